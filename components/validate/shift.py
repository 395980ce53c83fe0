"""Two-sample tests between two ``FeatureNameStatistics`` that account for sample size.

Drift and skew comparators with a fixed distance threshold (TFDV's JSD / L-infinity) fire on sampling
noise at small sizes and on histogram buckets that do not line up (equal-width buckets over each
sample's own min..max). The tests here read only what the statistics hold (counts, mean, std_dev, the
quantile histogram, the value counts) and call a feature shifted only when both hold:

* the difference is significant: p-value below ``alpha`` divided by the number of tests (Bonferroni,
  so ``alpha`` bounds the chance of any false alarm in one validation);
* the effect is large enough to matter, whatever the size: a floor on the effect size.

Numeric features: Welch's t-test on the means (effect: mean difference in standard deviations of the
reference), and a Kolmogorov-Smirnov test on a lower bound of the KS distance that the two quantile
histograms guarantee (each CDF is only known within its bucket; the quantile sketch's rank error widens
that), so integer and low-cardinality features, whose quantiles repeat, cannot fake a distance.
Categorical features: chi-square test of homogeneity on the value counts, cells with small expected
counts pooled (effect: total variation distance of the pooled table).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tensorflow_metadata.proto.v0 import statistics_pb2

_TINY = 1e-300
_EPS = 1e-14
_MAX_ITERATIONS = 100_000
#: expected count under which chi-square cells are pooled (Cochran's rule)
_MIN_EXPECTED = 5.0


@dataclasses.dataclass(frozen=True)
class ShiftTest:
    """Settings of the default drift/skew test (used for features without explicit comparator thresholds).

    Args:
        alpha: chance of any false alarm per validation (Bonferroni over features and tests).
        min_mean_shift: smallest mean difference, in standard deviations of the reference, that counts.
        min_ks: smallest KS distance (a guaranteed lower bound from the quantiles) that counts.
        min_tv: smallest total variation distance between the value distributions that counts.
        min_count: fewer values than this on either side: no test.
    """

    alpha: float = 0.001
    min_mean_shift: float = 0.2
    min_ks: float = 0.1
    min_tv: float = 0.1
    min_count: int = 10


@dataclasses.dataclass
class Finding:
    """One test's outcome: ``shifted`` when significant and above the floor."""

    test: str  # "mean", "ks", "categorical"
    statistic: float
    p_value: float
    effect: float
    floor: float
    shifted: bool
    detail: str


# ---- distributions (no SciPy in the data image) ----

def _betacf(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            step = d * c
            h *= step
        if abs(step - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) (continued fraction, Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def chi2_sf(x: float, df: float) -> float:
    """P(X > x) for a chi-square X with ``df`` degrees of freedom (regularized upper gamma Q(df/2, x/2))."""
    a, x = df / 2.0, x / 2.0
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITERATIONS):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    b = x + 1.0 - a
    c, d = 1.0 / _TINY, 1.0 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            break
    return math.exp(log_front) * h


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return betainc(k, n - k + 1, p)


def ks_sf(lam: float) -> float:
    """Kolmogorov's limiting distribution: P(sqrt(n) D > lam)."""
    if lam < 0.2:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2.0 * (-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-16:
            break
    return min(1.0, max(0.0, total))


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-300 else "<1e-300"


def _g(value: float) -> str:
    return f"{value:.4g}"


# ---- numeric ----

def _quantiles(feature: statistics_pb2.FeatureNameStatistics):
    """Boundaries and cumulative fractions of the quantile histogram, its count and rank error (or None)."""
    if feature.WhichOneof("stats") != "num_stats":
        return None
    histogram = next((h for h in feature.num_stats.histograms if h.type == statistics_pb2.Histogram.QUANTILES), None)
    if histogram is None or not histogram.buckets:
        return None
    counts = np.array([b.sample_count for b in histogram.buckets], dtype=float)
    total = counts.sum()
    if total <= 0:
        return None
    bounds = np.array([histogram.buckets[0].low_value] + [b.high_value for b in histogram.buckets], dtype=float)
    if not np.all(np.isfinite(bounds)) or np.any(np.diff(bounds) < 0):
        return None
    fractions = np.concatenate([[0.0], np.cumsum(counts) / total])
    error = next((c.num for c in feature.custom_stats if c.name == "quantile_rank_error_bound"), 0.0)
    return bounds, fractions, total, error


def _cdf_bounds(bounds: np.ndarray, fractions: np.ndarray, error: float, points: np.ndarray, left: bool):
    """Lower and upper bounds of F(x) (``left``: of P(X < x)) at ``points``.

    A boundary b_k of the quantile histogram is the smallest value with F(b_k) >= f_k, so x >= b_k gives
    F(x) >= f_k and x < b_k gives F(x) < f_k; ties of repeated boundaries (point masses) stay exact.
    """
    side = "left" if left else "right"
    index = np.searchsorted(bounds, points, side=side)
    last = fractions.size - 1
    low = np.where(index >= 1, fractions[np.clip(index - 1, 0, last)], 0.0)
    high = np.where(index <= last, fractions[np.clip(index, 0, last)], 1.0)
    return np.clip(low - error, 0.0, 1.0), np.clip(high + error, 0.0, 1.0)


def ks_lower_bound(a: statistics_pb2.FeatureNameStatistics, b: statistics_pb2.FeatureNameStatistics):
    """A lower bound of the KS distance between two numeric features' values and where it is reached.

    Returns:
        ``(distance, at_value, count_a, count_b)`` or None without quantile histograms.
    """
    qa, qb = _quantiles(a), _quantiles(b)
    if qa is None or qb is None:
        return None
    points = np.union1d(qa[0], qb[0])
    best, where = 0.0, float(points[0])
    for left in (False, True):
        low_a, high_a = _cdf_bounds(qa[0], qa[1], qa[3], points, left)
        low_b, high_b = _cdf_bounds(qb[0], qb[1], qb[3], points, left)
        gap = np.maximum(low_a - high_b, low_b - high_a)
        i = int(np.argmax(gap))
        if gap[i] > best:
            best, where = float(gap[i]), float(points[i])
    return best, where, qa[2], qb[2]


def _finite_count(feature: statistics_pb2.FeatureNameStatistics) -> float:
    q = _quantiles(feature)
    if q is not None:
        return q[2]
    common = feature.num_stats.common_stats
    infinite = sum(c.num for c in feature.custom_stats if c.name in ("num_pos_inf", "num_neg_inf"))
    return max(0.0, common.num_non_missing - infinite)


def numeric_tests(a, b, settings: ShiftTest, alpha: float, a_name: str, b_name: str) -> list[Finding]:
    """Welch's t-test on the means and the KS test on the quantiles of ``a`` against the reference ``b``."""
    na, nb = _finite_count(a), _finite_count(b)
    if na < settings.min_count or nb < settings.min_count:
        return []
    out = []
    ma, mb = a.num_stats.mean, b.num_stats.mean
    va = a.num_stats.std_dev ** 2 * na / (na - 1)
    vb = b.num_stats.std_dev ** 2 * nb / (nb - 1)
    se2 = va / na + vb / nb
    if se2 > 0 or ma != mb:
        difference = ma - mb
        if se2 > 0:
            t = difference / math.sqrt(se2)
            df = se2 * se2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1)) if se2 > 0 else na + nb - 2
            p = 2.0 * t_sf(abs(t), df)
        else:
            t, p = math.inf, 0.0
        scale = math.sqrt(vb) or math.sqrt((va + vb) / 2.0)
        effect = abs(difference) / scale if scale > 0 else (math.inf if difference else 0.0)
        shifted = p < alpha and effect >= settings.min_mean_shift
        out.append(Finding("mean", t, p, effect, settings.min_mean_shift, shifted,
                           f"mean {_g(ma)} in {a_name} vs {_g(mb)} in {b_name}: a shift of {_g(effect)} standard "
                           f"deviations of {b_name} (Welch t = {_g(t)}, p = {_p(p)}; alarm when p < {_p(alpha)} "
                           f"and the shift is at least {_g(settings.min_mean_shift)})"))
    bound = ks_lower_bound(a, b)
    if bound is not None:
        distance, where, qa, qb = bound
        effective = qa * qb / (qa + qb)
        root = math.sqrt(effective)
        p = ks_sf((root + 0.12 + 0.11 / root) * distance) if distance > 0 else 1.0
        shifted = p < alpha and distance >= settings.min_ks
        out.append(Finding("ks", distance, p, distance, settings.min_ks, shifted,
                           f"the distributions differ by a KS distance of at least {_g(distance)} (at {_g(where)}; "
                           f"bound from the quantiles), p = {_p(p)}; alarm when p < {_p(alpha)} and the distance "
                           f"is at least {_g(settings.min_ks)}"))
    return out


# ---- categorical ----

def categorical_test(a_counts: dict, a_total: float, b_counts: dict, b_total: float, settings: ShiftTest,
                     alpha: float, a_name: str, b_name: str) -> Finding | None:
    """Chi-square test of homogeneity on value counts (values beyond the listed ones form one cell)."""
    if a_total < settings.min_count or b_total < settings.min_count:
        return None
    labels = sorted(set(a_counts) | set(b_counts), key=lambda v: v.encode("utf-8"))
    cells = [(a_counts.get(v, 0.0), b_counts.get(v, 0.0)) for v in labels]
    rest = (max(0.0, a_total - sum(a_counts.values())), max(0.0, b_total - sum(b_counts.values())))
    if rest[0] + rest[1] > 0:
        cells.append(rest)
    share_a = a_total / (a_total + b_total)
    kept, pooled = [], [0.0, 0.0]
    for oa, ob in cells:
        row = oa + ob
        if min(row * share_a, row * (1.0 - share_a)) < _MIN_EXPECTED:
            pooled[0] += oa
            pooled[1] += ob
        else:
            kept.append((oa, ob))
    if pooled[0] + pooled[1] > 0:
        row = pooled[0] + pooled[1]
        if min(row * share_a, row * (1.0 - share_a)) < _MIN_EXPECTED and kept:
            smallest = min(range(len(kept)), key=lambda i: kept[i][0] + kept[i][1])
            kept[smallest] = (kept[smallest][0] + pooled[0], kept[smallest][1] + pooled[1])
        else:
            kept.append(tuple(pooled))
    if len(kept) < 2:
        return None
    statistic = 0.0
    for oa, ob in kept:
        row = oa + ob
        ea, eb = row * share_a, row * (1.0 - share_a)
        statistic += (oa - ea) ** 2 / ea + (ob - eb) ** 2 / eb
    p = chi2_sf(statistic, len(kept) - 1)
    tv = 0.5 * sum(abs(oa / a_total - ob / b_total) for oa, ob in kept)
    top = max(labels, key=lambda v: abs(a_counts.get(v, 0.0) / a_total - b_counts.get(v, 0.0) / b_total),
              default=None)
    shifted = p < alpha and tv >= settings.min_tv
    where = ""
    if top is not None:
        where = (f"; largest change: {top!r} {a_counts.get(top, 0.0) / a_total:.1%} in {a_name} vs "
                 f"{b_counts.get(top, 0.0) / b_total:.1%} in {b_name}")
    return Finding("categorical", statistic, p, tv, settings.min_tv, shifted,
                   f"value shares differ by a total variation distance of {_g(tv)} (chi-square = {_g(statistic)}, "
                   f"{len(kept) - 1} df, p = {_p(p)}; alarm when p < {_p(alpha)} and the distance is at least "
                   f"{_g(settings.min_tv)}){where}")
