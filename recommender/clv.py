"""Customer lifetime value: BG/NBD for how often, Gamma-Gamma for how much.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive a
customer buys at a Poisson rate λ ~ Gamma(r, alpha); after each purchase they drop out with
probability p ~ Beta(a, b). From a customer's repeat purchases ``x``, the time of the last
one ``t_x`` and their age ``T`` (all in weeks since the first purchase) it gives the
expected purchases in the next ``t`` weeks. Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM
and CLV") gives the expected value of one purchase from the customer's mean spend.

CLV here = expected purchases in the next :data:`HORIZON_WEEKS` x expected purchase value,
undiscounted, in the currency of the amounts. Both models are fitted by maximum likelihood
with scipy on the imported base; with too few repeat buyers the published CDNOW fit
(:data:`CDNOW_PARAMS`) is used instead. Pure: arrays in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special  # type: ignore[import-untyped]

WEEK = 7 * 86_400.0
HORIZON_WEEKS = 52.0
#: Fewer repeat buyers than this: keep the prior parameters rather than fit noise.
MIN_REPEAT_BUYERS = 30

Arr = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ClvParams:
    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    v: float
    fitted: bool = False


#: Parameters published for the CDNOW sample (Fader, Hardie & Lee 2005a/b), weeks and USD.
CDNOW_PARAMS = ClvParams(r=0.243, alpha=4.414, a=0.793, b=2.426, p=6.25, q=3.74, v=15.44)


def bgnbd_loglik(params: Arr, x: Arr, t_x: Arr, big_t: Arr) -> float:
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def gamma_gamma_loglik(params: Arr, x: Arr, m: Arr) -> float:
    p, q, v = params
    px = p * x
    return float(
        np.sum(
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * np.log(v)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(x * m + v)
        )
    )


def _fit(loglik: object, start: list[float], *args: Arr) -> Arr | None:
    def neg(log_params: Arr) -> float:
        value = loglik(np.exp(log_params), *args)  # type: ignore[operator]
        return -value if np.isfinite(value) else 1e12

    # Bounded (e^-7 .. e^7): keeps a degenerate optimum (p -> inf, v -> 0) out of reach.
    res = optimize.minimize(
        neg,
        np.log(start),
        method="Nelder-Mead",
        bounds=[(-7.0, 7.0)] * len(start),
        options={"maxiter": 4000, "xatol": 1e-6},
    )
    return np.exp(res.x) if res.success else None


def fit(x: Arr, t_x: Arr, big_t: Arr, mean_value: Arr) -> ClvParams:
    """Fit both models (x repeat purchases, t_x and T in weeks, mean value per purchase)."""
    repeat = x > 0
    if int(repeat.sum()) < MIN_REPEAT_BUYERS:
        return CDNOW_PARAMS
    bg = _fit(bgnbd_loglik, [1.0, 1.0, 1.0, 1.0], x, t_x, big_t)
    good = repeat & (mean_value > 0)
    gg = _fit(gamma_gamma_loglik, [1.0, 1.0, 1.0], x[good], mean_value[good])
    if bg is None or gg is None or gg[1] <= 1:
        return CDNOW_PARAMS
    b4 = [float(v) for v in bg]
    g3 = [float(v) for v in gg]
    return ClvParams(b4[0], b4[1], b4[2], b4[3], g3[0], g3[1], g3[2], fitted=True)


def expected_purchases(params: ClvParams, t: float, x: float, t_x: float, big_t: float) -> float:
    """BG/NBD conditional expectation of purchases in the next ``t`` weeks."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if a == 1.0:  # the closed form divides by a - 1
        a = 1.0 + 1e-9
    z = t / (alpha + big_t + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    numer = (a + b + x - 1) / (a - 1) * (1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp)
    denom = 1 + (a / (b + x - 1)) * ((alpha + big_t) / (alpha + t_x)) ** (r + x) if x > 0 else 1.0
    return float(max(numer / denom, 0.0))


def expected_value(params: ClvParams, x: float, mean_value: float) -> float:
    """Gamma-Gamma expected value of one purchase (the population mean for x = 0)."""
    p, q, v = params.p, params.q, params.v
    if x <= 0 or mean_value <= 0:
        return p * v / (q - 1)
    return (p * (v + x * mean_value)) / (p * x + q - 1)


def clv(params: ClvParams, x: float, t_x: float, big_t: float, mean_value: float) -> float:
    return expected_purchases(params, HORIZON_WEEKS, x, t_x, big_t) * expected_value(params, x, mean_value)
