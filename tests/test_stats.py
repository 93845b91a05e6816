"""Wilson intervals and the exact McNemar test against values worked out by hand."""

import pytest

from s2d.stats import mcnemar_exact, wilson


@pytest.mark.parametrize("k, n, low, high", [
    # k = 0: (0, z²/(n + z²)) = (0, 3.8416 / 13.8416)
    (0, 10, 0.0, 0.277540),
    # k = n/2: centre 0.5, half-width 1.96·sqrt(0.025 + 0.009604) / 1.38416
    (5, 10, 0.236590, 0.763410),
    # k = n: (n/(n + z²), 1) = (40 / 43.8416, 1)
    (40, 40, 0.912375, 1.0),
    # 27 of 40 (0.675): the README's kind of figure
    (27, 40, 0.520175, 0.799157),
    (50, 100, 0.403830, 0.596170),
])
def test_wilson_golden_values(k, n, low, high):
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=2e-6)


def test_wilson_edges_and_errors():
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 40)[0] == 0.0 and wilson(40, 40)[1] == 1.0
    lo90, hi90 = wilson(5, 10, z=1.645)
    lo95, hi95 = wilson(5, 10)
    assert lo95 < lo90 < 0.5 < hi90 < hi95
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(11, 10)


@pytest.mark.parametrize("b, c, p", [
    (0, 6, 0.03125),           # 2 · 0.5^6
    (6, 0, 0.03125),
    (1, 9, 22 / 1024),         # 2 · (1 + 10) / 2^10
    (5, 5, 1.0),               # 2 · P(X <= 5) > 1, capped
    (0, 0, 1.0),               # no discordant pairs: no evidence either way
    (0, 1, 1.0),
    (2, 10, 2 * (1 + 12 + 66) / 4096),
])
def test_mcnemar_exact_golden_values(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-12)


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match="counts >= 0"):
        mcnemar_exact(-1, 3)
