"""The NumPy reference is the specification: check it by hand on tiny cases, by finite
differences everywhere, and against its own stated semantics (masks, chaining, reverse)."""
import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from seqcore import reference
from rnn_cases import VARIANTS, finite_difference_check, forward, lengths_to_mask, make_problem

OPTIONS = list(itertools.product([False, True], repeat=5))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mask,reverse,dropout,initial,bias", OPTIONS)
def test_reference_backward_matches_finite_differences(variant, mask, reverse, dropout,
                                                        initial, bias):
    p = make_problem(variant, T=4, B=4, I=3, H=2, mask=mask, reverse=reverse,
                     dropout=dropout, initial=initial, bias=bias, seed=7)
    worst = finite_difference_check(reference, p)
    assert max(worst.values()) <= 1e-6, worst


def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def test_lstm_by_hand():
    # I = H = 1, two steps; gates i, f, c, o.
    W = np.array([[0.5, -0.3, 0.8, 0.1]])
    U = np.array([[0.2, 0.4, -0.6, 0.7]])
    b = np.array([0.1, 1.0, 0.0, -0.2])
    xs = [0.7, -1.2]
    h, c = 0.3, -0.1
    for xv in xs:
        z = [xv * W[0, k] + h * U[0, k] + b[k] for k in range(4)]
        i, f, g, o = _sig(z[0]), _sig(z[1]), math.tanh(z[2]), _sig(z[3])
        c = f * c + i * g
        h = o * math.tanh(c)
    x = np.array(xs).reshape(2, 1, 1)
    out, hn, cn, _ = reference.lstm_forward(x, W, U, b, np.array([[0.3]]), np.array([[-0.1]]))
    assert out[-1, 0, 0] == pytest.approx(h, abs=1e-15)
    assert hn[0, 0] == pytest.approx(h, abs=1e-15)
    assert cn[0, 0] == pytest.approx(c, abs=1e-15)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_by_hand(reset_after):
    W = np.array([[0.5, -0.3, 0.8]])
    U = np.array([[0.2, 0.4, -0.6]])
    bx, bh = np.array([0.1, 0.3, -0.2]), np.array([0.05, -0.1, 0.25])
    x0, h = 0.7, 0.4
    z = _sig(x0 * W[0, 0] + bx[0] + h * U[0, 0] + bh[0])
    r = _sig(x0 * W[0, 1] + bx[1] + h * U[0, 1] + bh[1])
    if reset_after:
        n = math.tanh(x0 * W[0, 2] + bx[2] + r * (h * U[0, 2] + bh[2]))
        bias = np.stack([bx, bh])
    else:
        # reset_after=False has one bias; fold bh into it for this check (bh only enters
        # n inside the reset product with reset_after, so zero it there)
        z = _sig(x0 * W[0, 0] + bx[0] + h * U[0, 0])
        r = _sig(x0 * W[0, 1] + bx[1] + h * U[0, 1])
        n = math.tanh(x0 * W[0, 2] + bx[2] + (r * h) * U[0, 2])
        bias = bx
    expected = (1 - z) * n + z * h
    out, hn, _ = reference.gru_forward(np.array([[[x0]]]), W, U, bias, np.array([[h]]),
                                       reset_after=reset_after)
    assert hn[0, 0] == pytest.approx(expected, abs=1e-15)
    assert out[0, 0, 0] == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_by_hand(activation):
    act = math.tanh if activation == "tanh" else (lambda a: max(a, 0.0))
    W, U, b = np.array([[1.5, -0.5]]), np.array([[0.3, -0.2], [0.1, 0.4]]), np.array([0.1, -0.3])
    h = [0.2, -0.4]
    for xv in [0.5, -0.25]:
        h = [act(xv * W[0, j] + h[0] * U[0, j] + h[1] * U[1, j] + b[j]) for j in range(2)]
    _, hn, _ = reference.rnn_forward(np.array([0.5, -0.25]).reshape(2, 1, 1), W, U, b,
                                     np.array([[0.2, -0.4]]), activation=activation)
    np.testing.assert_allclose(hn[0], h, atol=1e-15)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_call_equals_steps_chained(variant):
    """T calls of length 1, carrying the state, equal one call of length T."""
    p = make_problem(variant, T=5, B=3, I=4, H=3, initial=True, dropout=True, seed=3)
    full, finals, _ = forward(reference, p)
    states = p.states
    for t in range(5):
        out, states, _ = forward(reference, replace(p, x=p.x[t:t + 1], states=states))
        np.testing.assert_allclose(out[0], full[t], atol=1e-14)
    for a, b in zip(states, finals):
        np.testing.assert_allclose(a, b, atol=1e-14)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_mean_each_row_alone(variant, reverse):
    """With post-padded masks each row equals running that row alone on its valid steps
    (so the reverse direction starts at the row's last valid step); masked steps output
    zero and a length-0 row keeps its initial state."""
    lengths = [5, 0, 3, 1]
    p = make_problem(variant, T=5, B=4, I=2, H=3, initial=True, reverse=reverse, seed=11)
    p.mask = lengths_to_mask(lengths, 5)
    out, finals, _ = forward(reference, p)
    for row, L in enumerate(lengths):
        alone = replace(p, x=p.x[:L, row:row + 1], mask=None,
                        states=[s[row:row + 1] for s in p.states])
        if L == 0:
            for f, s in zip(finals, p.states):
                np.testing.assert_array_equal(f[row], s[row])
        else:
            o, fs, _ = forward(reference, alone)
            np.testing.assert_allclose(out[:L, row], o[:, 0], atol=1e-14)
            for f, g in zip(finals, fs):
                np.testing.assert_allclose(f[row], g[0], atol=1e-14)
        assert not out[L:, row].any()


def test_float32_stays_float32():
    p = make_problem("lstm", T=3, B=2, I=2, H=2, dtype=np.float32)
    out, finals, _ = forward(reference, p)
    assert out.dtype == np.float32 and all(f.dtype == np.float32 for f in finals)
