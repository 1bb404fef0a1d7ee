"""Coefficients of the AVX2 float32 activations (seqcore/_kernels/cells.h, sc_sigmoid_v8 and
sc_tanh_v8), fitted to the smallest largest relative error:

- exp(r) ~= 1 + r q(r) on |r| <= ln(2) / 2 (the reduced argument of exp), q of degree 5;
- tanh(x) ~= x P(x^2) / Q(x^2) on [0, 9], P and Q of degree 4, Q's constant term 1.

Both by weighted linear least squares, the weights pushed towards the points of largest error
at each round (Lawson); for the rational fit the residual P(s) - f(s) Q(s) (f = tanh(x) / x,
s = x^2) is divided by the previous round's Q, so that it approximates the relative error
(Sanathanan-Koerner). Prints the coefficients with 9 significant digits (enough to
round-trip a float32) and the largest relative error in float64; cells.h's comments give the
errors of the float32 evaluation.

    python tools/fit_activations.py
"""
import numpy as np

ROUNDS = 300


def lawson(system, error, n_points):
    """Coefficients c minimizing the largest of error(c) (one value per point): each round
    solves system(c_prev) = (design, target), design @ c ~ target, by least squares with
    weights pushed towards the points of the largest error so far. Returns c and that error."""
    w, c = np.ones(n_points), None
    for _ in range(ROUNDS):
        design, target = system(c)
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)
        err = error(c)
        w = w * (err / err.max() + 1e-3)
        w /= w.mean()
    return c, err.max()


def fit_exp(degree=5):
    # a little past ln(2) / 2: the kernel's reduced argument, rounded, can land just outside
    r = np.linspace(-np.log(2) / 2, np.log(2) / 2, 20001) * 1.0001
    r = r[r != 0]
    powers = r[:, None] ** np.arange(degree + 1)
    return lawson(lambda c: (powers, np.expm1(r) / r),
                  lambda c: np.abs(1 + r * (powers @ c) - np.exp(r)) / np.exp(r), len(r))


def fit_tanh(x_max=9.0, deg_p=4, deg_q=4):
    x = np.concatenate([np.geomspace(1e-6, 1e-4, 200), np.linspace(1e-4, x_max, 20000)])
    s, f = x * x, np.tanh(x) / x
    powers_p = s[:, None] ** np.arange(deg_p + 1)
    powers_q = s[:, None] ** np.arange(1, deg_q + 1)

    def p_and_q(c):
        return c[:deg_p + 1], np.concatenate([[1.0], c[deg_p + 1:]])

    def system(c):          # P(s) - f Q(s) = 0 with q_0 = 1, divided by the last round's Q
        q_prev = 1.0 if c is None else np.polyval(p_and_q(c)[1][::-1], s)
        return (np.hstack([powers_p, -f[:, None] * powers_q]) / np.abs(q_prev)[..., None],
                f / np.abs(q_prev))

    def error(c):
        p, q = p_and_q(c)
        return np.abs(np.polyval(p[::-1], s) / np.polyval(q[::-1], s) - f) / f

    c, worst = lawson(system, error, len(s))
    return (*p_and_q(c), worst)


def show(name, coefs):
    print(f"{name}:", ", ".join(f"{c:.9g}" for c in coefs))


if __name__ == "__main__":
    q, worst = fit_exp()
    show("exp q (r^0 first)", q)
    print(f"  largest relative error of exp (float64): {worst:.3g}")
    p, q, worst = fit_tanh()
    show("tanh P (s^0 first)", p)
    show("tanh Q (s^0 first)", q)
    print(f"  largest relative error of tanh (float64): {worst:.3g}")
