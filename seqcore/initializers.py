"""Weight initializers, as Keras defines them (so a freshly built layer matches Keras's
distribution): glorot_uniform, orthogonal, uniform (Embedding's default), zeros, ones.

Each is a function (shape, rng, dtype) -> array; `get(name)` looks one up by name.
"""
import numpy as np
import threadpoolctl

__all__ = ["glorot_uniform", "orthogonal", "uniform", "zeros", "ones", "get"]


def _fans(shape):
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, rng, dtype):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape, rng, dtype):
    """A random matrix with orthonormal rows or columns (Saxe et al. 2014): the Q of a Gaussian
    matrix's QR decomposition, signs fixed by R's diagonal so that Q is uniformly distributed."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    # NumPy's BLAS on one thread: on several, its idle threads keep spinning for ~0.1 s after
    # the QR and take a core from the first kernel call (2 threads, a layer built and then
    # trained at once, LSTM (100, 64, 512, 512): the first forward 166-172 ms against 110-115
    # after a pause). One thread was as fast as two for these QRs (2048 x 512: 111 / 122-157 ms).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


def uniform(shape, rng, dtype):
    """U(-0.05, 0.05): Keras's RandomUniform default, used for embeddings."""
    return rng.uniform(-0.05, 0.05, size=shape).astype(dtype)


def zeros(shape, rng, dtype):
    return np.zeros(shape, dtype)


def ones(shape, rng, dtype):
    return np.ones(shape, dtype)


_BY_NAME = {f.__name__: f for f in (glorot_uniform, orthogonal, uniform, zeros, ones)}


def get(name):
    """The initializer called `name` (one of glorot_uniform, orthogonal, uniform, zeros, ones)."""
    if name not in _BY_NAME:
        raise ValueError(f"initializer: expected one of {sorted(_BY_NAME)}, got {name!r}")
    return _BY_NAME[name]
