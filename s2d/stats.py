"""Uncertainty of the figures s2d reports: Wilson score intervals and the exact McNemar test."""

from __future__ import annotations

import math
from fractions import Fraction


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (z = 1.96: 95%); (0.0, 1.0) when n is 0.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps its coverage at the
    small n and the 0% / 100% accuracies this project sees.
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n; got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At k = 0 or k = n one end is exactly 0 or 1; the formula returns it up to rounding.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value on paired right/wrong outcomes.

    b and c are the discordant pairs (right by one system and wrong by the other, each way); under the
    null each is a fair coin flip, so p = min(1, 2 * P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2).
    """
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact needs counts >= 0; got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = Fraction(sum(math.comb(n, i) for i in range(min(b, c) + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))
