"""Shared test machinery: random problems for every cell variant, a uniform way to call
forward/backward of any implementation module (seqcore.reference or seqcore.ops, which share
signatures), and a central-difference gradient check."""
import gc
import itertools
from dataclasses import dataclass, field

import numpy as np

# cell variant name -> (cell, gates, number of states, extra keyword arguments)
VARIANTS = {
    "lstm": ("lstm", 4, 2, {}),
    "gru": ("gru", 3, 1, {"reset_after": True}),
    "gru_v1": ("gru", 3, 1, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, 1, {"activation": "tanh"}),
    "rnn_relu": ("rnn", 1, 1, {"activation": "relu"}),
}

# float32: error relative to the output scale; float64: tight
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


@dataclass
class Problem:
    variant: str
    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: object
    states: list
    mask: object = None
    input_mask: object = None
    recurrent_mask: object = None
    reverse: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def cell(self):
        return VARIANTS[self.variant][0]

    def arrays(self):
        """Every differentiable input, by name, in the order backward returns gradients."""
        named = [("x", self.x), ("kernel", self.kernel),
                 ("recurrent_kernel", self.recurrent_kernel), ("bias", self.bias)]
        named += [(f"state{k}", s) for k, s in enumerate(self.states)]
        return [(n, a) for n, a in named if a is not None]


def holey_mask(T, B, rng):
    """A (T, B) mask with every kind of row: full, with holes, all masked, post-padded."""
    mask = rng.random((T, B)) < 0.7
    mask[:, 0] = True
    if B > 1:
        mask[:, 1] = False            # all-masked row (length 0)
    if B > 2:
        mask[:, 2] = np.arange(T) < max(1, T // 2)   # post-padded, like lengths
    return mask


def lengths_to_mask(lengths, T):
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def make_problem(variant, T, B, I, H, dtype=np.float64, seed=0, mask=False, dropout=False,
                 initial=False, bias=True, reverse=False, scale=0.5):
    cell, G, n_states, extra = VARIANTS[variant]
    rng = np.random.default_rng(seed)

    def rand(*shape):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    if not bias:
        b = None
    elif cell == "gru" and extra["reset_after"]:
        b = rand(2, G * H)
    else:
        b = rand(G * H)
    # weights scaled by fan-in like real initialisations, so the recurrence is not chaotic
    # (chaotic dynamics amplify float32 rounding without bound)
    p = Problem(variant, rand(T, B, I), rand(I, G * H) * dtype(2 / np.sqrt(I)),
                rand(H, G * H) * dtype(2 / np.sqrt(H)), b,
                [rand(B, H) if initial else None for _ in range(n_states)],
                reverse=reverse, extra=dict(extra))
    if mask:
        p.mask = holey_mask(T, B, rng)
    if dropout:
        keep = 0.75
        kept = rng.random((B, I)) < keep
        # Keep one input per row: a row with every input dropped, no bias and a zero state
        # has a pre-activation of exactly 0, the ReLU kink, where finite differences fail.
        kept[:, 0] = True
        p.input_mask = (kept / keep).astype(dtype)
        p.recurrent_mask = ((rng.random((B, H)) < keep) / keep).astype(dtype)
    return p


def forward(impl, p, **overrides):
    """Call impl.<cell>_forward on a Problem. Returns (outputs, [final states], cache)."""
    args = dict(x=p.x, kernel=p.kernel, recurrent_kernel=p.recurrent_kernel, bias=p.bias,
                mask=p.mask, input_mask=p.input_mask, recurrent_mask=p.recurrent_mask,
                reverse=p.reverse, **p.extra)
    args.update(overrides)
    fn = getattr(impl, f"{p.cell}_forward")
    if p.cell == "lstm":
        out, h, c, cache = fn(h0=p.states[0], c0=p.states[1], **args)
        return out, [h, c], cache
    out, h, cache = fn(h0=p.states[0], **args)
    return out, [h], cache


def backward(impl, p, d_outputs, d_finals, cache):
    """Call impl.<cell>_backward. Returns the gradients aligned with Problem.arrays()
    (states given as None get gradients too; they are dropped to align)."""
    fn = getattr(impl, f"{p.cell}_backward")
    dx, dW, dU, db, *d_states = fn(d_outputs, *d_finals, cache)
    grads = [dx, dW, dU] + ([db] if p.bias is not None else [])
    grads += [d for d, s in zip(d_states, p.states) if s is not None]
    return grads, d_states


def loss_weights(p, seed=1):
    """Random weights R so that loss = sum(outputs * R0) + sum(final_k * Rk)."""
    rng = np.random.default_rng(seed)
    T, B, _ = p.x.shape
    H = p.recurrent_kernel.shape[0]
    n_states = VARIANTS[p.variant][2]
    return (rng.standard_normal((T, B, H)).astype(p.x.dtype),
            [rng.standard_normal((B, H)).astype(p.x.dtype) for _ in range(n_states)])


def loss(impl, p, R_out, R_finals):
    out, finals, _ = forward(impl, p)
    return float(np.sum(out * R_out) + sum(np.sum(f * r) for f, r in zip(finals, R_finals)))


def finite_difference_check(impl, p, eps=1e-6):
    """Largest relative error (max |numeric - analytic| / max |analytic|) over all inputs.

    Needs float64. States given as None are set to explicit zeros so their gradients are
    checked too.
    """
    p.states = [np.zeros(p.x.shape[1:2] + (p.recurrent_kernel.shape[0],)) if s is None else s
                for s in p.states]
    R_out, R_finals = loss_weights(p)
    _, _, cache = forward(impl, p)
    analytic, _ = backward(impl, p, R_out, R_finals, cache)
    worst = {}
    for (name, arr), grad in zip(p.arrays(), analytic):
        numeric = np.zeros_like(arr)
        for idx in itertools.product(*map(range, arr.shape)):
            saved = arr[idx]
            arr[idx] = saved + eps
            up = loss(impl, p, R_out, R_finals)
            arr[idx] = saved - eps
            down = loss(impl, p, R_out, R_finals)
            arr[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        scale = max(np.max(np.abs(numeric)), 1e-12)
        worst[name] = np.max(np.abs(numeric - grad)) / scale
    return worst


def poison_pool(shape, dtype, count=1):
    """Free the pool's idle blocks, then leave `count` blocks of `shape` and `dtype` on its
    free list filled with NaN: the next requests of that size get them, so a kernel that reads
    pooled memory it did not write shows NaN in its results."""
    from seqcore import ops
    from seqcore._kernels import pool

    ops.release_memory()
    blocks = [pool.empty(shape, dtype) for _ in range(count)]
    for block in blocks:
        block.fill(np.nan)
    del blocks, block
    gc.collect()
