"""Optimizers (Keras 3's update rules and defaults) and gradient clipping.

An optimizer updates a list of parameter arrays in place from a list of gradients aligned with
it; its per-parameter state (slots) is kept by position, so the list must stay the same between
steps (Sequential guarantees it).
"""
import numpy as np

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "get", "clip_gradients"]


class Optimizer:
    def __init__(self, learning_rate):
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate: expected a positive number, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self._slots = None

    def apply(self, params, grads):
        """params[i] -= update(grads[i]), in place."""
        if len(params) != len(grads):
            raise ValueError(f"grads: expected {len(params)} arrays, got {len(grads)}")
        if self._slots is None:
            self._slots = [self._new_slots(p) for p in params]
        self.iterations += 1
        for p, g, s in zip(params, grads, self._slots):
            self._update(p, np.asarray(g, p.dtype), s)

    def _new_slots(self, p):
        return {}

    def get_config(self):
        return {"name": type(self).__name__, "learning_rate": self.learning_rate}


class SGD(Optimizer):
    """v = momentum v - lr g; p += v (nesterov: p += momentum v - lr g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _new_slots(self, p):
        return {"v": np.zeros_like(p)} if self.momentum else {}

    def _update(self, p, g, s):
        lr = p.dtype.type(self.learning_rate)
        if not self.momentum:
            p -= lr * g
            return
        v = s["v"]
        v *= p.dtype.type(self.momentum)
        v -= lr * g
        if self.nesterov:
            p += p.dtype.type(self.momentum) * v - lr * g
        else:
            p += v


class RMSprop(Optimizer):
    """a = rho a + (1 - rho) g^2; p -= lr g / sqrt(a + epsilon) (with momentum on the step)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7):
        super().__init__(learning_rate)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)

    def _new_slots(self, p):
        return {"a": np.zeros_like(p), "m": np.zeros_like(p)}

    def _update(self, p, g, s):
        a = s["a"]
        a *= self.rho
        a += (1 - self.rho) * g * g
        step = self.learning_rate * g / np.sqrt(a + self.epsilon)
        if self.momentum:
            s["m"] *= self.momentum
            s["m"] += step
            step = s["m"]
        p -= step.astype(p.dtype, copy=False)


class Adam(Optimizer):
    """Kingma & Ba 2015, in Keras's form: p -= lr_t m / (sqrt(v) + epsilon),
    lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _new_slots(self, p):
        return {"m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _update(self, p, g, s):
        t = self.iterations
        m, v = s["m"], s["v"]
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (g * g - v)
        lr_t = self.learning_rate * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        p -= (lr_t * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p -= lr wd p, then Adam."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.weight_decay = float(weight_decay)

    def _update(self, p, g, s):
        p -= p.dtype.type(self.learning_rate * self.weight_decay) * p
        super()._update(p, g, s)


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(optimizer):
    """An Optimizer from an Optimizer object or a name (sgd, rmsprop, adam, adamw)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in _BY_NAME:
        raise ValueError(f"optimizer: expected a seqcore.optimizers.Optimizer or one of "
                         f"{sorted(_BY_NAME)}, got {optimizer!r}")
    return _BY_NAME[optimizer.lower()]()


def clip_gradients(grads, clipnorm=None, clipvalue=None):
    """Clip every gradient to [-clipvalue, clipvalue], then scale all of them together so that
    their global L2 norm is at most clipnorm. Returns new arrays."""
    if clipvalue is not None:
        grads = [np.clip(g, -clipvalue, clipvalue) for g in grads]
    if clipnorm is not None:
        norm = np.sqrt(sum(float(np.square(g).sum()) for g in grads))   # no BLAS call
        if norm > clipnorm:
            grads = [g * (clipnorm / norm) for g in grads]
    return grads
