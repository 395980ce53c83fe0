"""Judge a canary before promotion: error rate and p99 latency over a bake period.

The numbers come from the kfpc model server's own Prometheus metrics (``serving/observability.py``):
``kfpc_requests_total{model_name,protocol,code}`` and the histogram ``kfpc_request_latency_seconds``. Two
sources, same verdict:

* :class:`PrometheusSource`: the Prometheus HTTP query API (``/api/v1/query``), ``increase(...)`` over the
  time baked so far, restricted by a label selector that picks the canary's pods only;
* :class:`MetricsEndpointSource`: the canary's own ``/metrics`` (text exposition, parsed by
  ``prometheus_client``'s parser). The canary is a fresh process, so its counters count the canary's whole
  life; a counter going down between two reads means the process restarted, which fails the canary.

With a baseline (``PrometheusSource(baseline_selector=...)``: the stable revision's series over the same
window) the canary is also judged relative to it: its error rate may exceed the stable's by at most
``max_error_rate_increase`` and its p99 the stable's by at most the factor ``max_p99_ratio``, so a canary that
is worse than what it replaces fails even under the absolute limits. Neither side is judged on fewer than
``min_requests`` requests.

An error is an answer with a 5xx status (4xx are the client's mistakes, not the model's). p99 is estimated
from the histogram buckets the way Prometheus' ``histogram_quantile`` does (linear inside a bucket); a
quantile that falls in the ``+Inf`` bucket is infinite, so a canary slower than the largest bucket fails.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from kfpc.components import _progress as progress
from kfpc.components import defaults as D

REQUESTS_METRIC = "kfpc_requests_total"
LATENCY_METRIC = "kfpc_request_latency_seconds"

DEFAULT_BAKE_S = 300.0
DEFAULT_MAX_ERROR_RATE = 0.01
DEFAULT_MAX_P99_LATENCY_MS = 1000.0
DEFAULT_MIN_REQUESTS = 50
DEFAULT_MAX_ERROR_RATE_INCREASE = D.MAX_ERROR_RATE_INCREASE
DEFAULT_MAX_P99_RATIO = D.MAX_P99_RATIO


class CanaryFailed(RuntimeError):
    """The canary broke a threshold (or could not be judged); the message says which and by how much."""


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When a canary may be promoted.

    Attributes:
        bake_s: seconds the canary must serve (after it is Ready) before it can be promoted.
        max_error_rate: highest share of 5xx answers, 0..1.
        max_p99_latency_ms: highest 99th-percentile request latency, milliseconds.
        min_requests: requests the canary must have answered for a verdict; with fewer after the bake, the
            bake goes on (up to the rollout's ``timeout_s`` more) and then fails. With a baseline, the stable
            revision must have answered as many.
        max_error_rate_increase: with a baseline: how far the canary's 5xx share may exceed the stable's
            (absolute, 0..1).
        max_p99_ratio: with a baseline: the canary's p99 may be at most this factor times the stable's (>= 1).
    """

    bake_s: float = DEFAULT_BAKE_S
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_p99_latency_ms: float = DEFAULT_MAX_P99_LATENCY_MS
    min_requests: int = DEFAULT_MIN_REQUESTS
    max_error_rate_increase: float = DEFAULT_MAX_ERROR_RATE_INCREASE
    max_p99_ratio: float = DEFAULT_MAX_P99_RATIO

    def __post_init__(self) -> None:
        checks = (("bake_s", self.bake_s >= 0), ("max_error_rate", 0 <= self.max_error_rate <= 1),
                  ("max_p99_latency_ms", self.max_p99_latency_ms > 0), ("min_requests", self.min_requests >= 0),
                  ("max_error_rate_increase", 0 <= self.max_error_rate_increase <= 1),
                  ("max_p99_ratio", self.max_p99_ratio >= 1))
        for name, ok in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not ok:
                raise ValueError(f"canary threshold {name}={value!r} is out of range")


@dataclasses.dataclass(frozen=True)
class Sample:
    """What a source measured: request and 5xx counts, p99 in ms (``None`` without requests); ``baseline``:
    the stable revision's sample over the same window, when the source reads one."""

    requests: float
    errors: float
    p99_ms: float | None
    source: str
    baseline: Sample | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p99 = "n/a" if self.p99_ms is None else f"{self.p99_ms:.1f} ms"
        text = (f"{self.requests:g} requests, {self.errors:g} errors (rate {self.error_rate:.4f}), p99 {p99} "
                f"[{self.source}]")
        return text if self.baseline is None else f"{text}; stable: {self.baseline.describe()}"


def quantile_from_buckets(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``[(upper_bound, count), ...]`` (``+Inf`` last).

    Linear interpolation inside the bucket, as Prometheus' ``histogram_quantile``; ``inf`` when the quantile
    lies in the ``+Inf`` bucket; ``None`` for an empty histogram.
    """
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return math.inf
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return math.inf


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read(50_000_000)
    except urllib.error.HTTPError as err:
        raise CanaryFailed(f"{_safe(url)} answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        raise CanaryFailed(f"{_safe(url)} could not be read: {getattr(err, 'reason', err)}") from None


def _safe(url: str) -> str:
    from kfpc.components._redact import redact

    return redact(url)


class MetricsEndpointSource:
    """The canary's own ``/metrics`` page (one process: with several replicas, the one the URL reaches)."""

    def __init__(self, url: str, model_name: str, timeout_s: float = 10.0):
        """Args:
        url: the canary's metrics URL, e.g. ``http://<canary-service>.<ns>.svc.cluster.local:8080/metrics``.
        model_name: the ``model_name`` label to count (the InferenceService name).
        timeout_s: HTTP timeout per read.
        """
        self.url, self.model_name, self.timeout_s = url, model_name, timeout_s
        self._last_requests = 0.0

    def sample(self, window_s: float) -> Sample:
        """Counts since the canary process started (``window_s`` is not needed: the process is the canary)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = _get(self.url, self.timeout_s).decode("utf-8", errors="replace")
        requests = errors = 0.0
        buckets: dict[float, float] = {}
        try:
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.labels.get("model_name") != self.model_name:
                        continue
                    if s.name == REQUESTS_METRIC:
                        requests += s.value
                        if str(s.labels.get("code", "")).startswith("5"):
                            errors += s.value
                    elif s.name == LATENCY_METRIC + "_bucket":
                        bound = float(s.labels["le"])
                        buckets[bound] = buckets.get(bound, 0.0) + s.value
        except (ValueError, KeyError, TypeError) as err:
            raise CanaryFailed(f"{_safe(self.url)}: not a Prometheus text exposition ({str(err)[:80]!r})") from None
        if requests < self._last_requests:
            raise CanaryFailed(
                f"the canary's request counter at {_safe(self.url)} went down ({self._last_requests:g} -> "
                f"{requests:g}): the canary process restarted during the bake"
            )
        self._last_requests = requests
        p99 = quantile_from_buckets(0.99, list(buckets.items()))
        return Sample(requests, errors, None if p99 is None else p99 * 1000.0, self.url)


class PrometheusSource:
    """Prometheus' HTTP query API, over the series the selector picks (the canary's pods only), and the
    stable revision's series as the baseline when ``baseline_selector`` is given."""

    def __init__(self, url: str, selector: str, timeout_s: float = 10.0, token: str = "", baseline_selector: str = ""):
        """Args:
        url: Prometheus base URL (``/api/v1/query`` is appended).
        selector: label matchers without braces, e.g. ``namespace="ml",model_name="m",pod=~"m-00002-.*"``.
        timeout_s: HTTP timeout per query.
        token: optional bearer token for a Prometheus behind an auth proxy.
        baseline_selector: label matchers of the stable revision's series; empty: no baseline.
        """
        self.url, self.selector, self.timeout_s, self.token = url.rstrip("/"), selector, timeout_s, token
        self.baseline_selector = baseline_selector

    def query(self, promql: str) -> float | None:
        """The value of a scalar-like query (sum of a vector's samples); ``None`` for an empty answer or NaN."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        raw = _get(url, self.timeout_s, headers)
        try:
            answer = json.loads(raw)
            if answer.get("status") != "success":
                raise CanaryFailed(f"Prometheus at {_safe(self.url)} refused {promql!r}: "
                                   f"{str(answer.get('error'))[:200]}")
            data = answer["data"]
            if data["resultType"] == "scalar":
                values = [float(data["result"][1])]
            else:
                values = [float(item["value"][1]) for item in data["result"]]
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise CanaryFailed(f"Prometheus at {_safe(self.url)}: unexpected answer to {promql!r} "
                               f"({str(err)[:80]!r})") from None
        values = [v for v in values if not math.isnan(v)]
        return sum(values) if values else None

    def sample(self, window_s: float) -> Sample:
        """The canary's numbers over the last ``window_s`` seconds (and the stable's, as ``baseline``)."""
        sample = self._sample(self.selector, window_s)
        if self.baseline_selector:
            sample = dataclasses.replace(sample, baseline=self._sample(self.baseline_selector, window_s))
        return sample

    def _sample(self, sel: str, window_s: float) -> Sample:
        window = f"{max(int(math.ceil(window_s)), 1)}s"
        requests = self.query(f"sum(increase({REQUESTS_METRIC}{{{sel}}}[{window}]))") or 0.0
        errors = self.query(f'sum(increase({REQUESTS_METRIC}{{{sel},code=~"5.."}}[{window}]))') or 0.0
        p99 = self.query(
            f"histogram_quantile(0.99, sum by (le) (increase({LATENCY_METRIC}_bucket{{{sel}}}[{window}])))"
        )
        return Sample(requests, errors, None if p99 is None else p99 * 1000.0, f"prometheus {{{sel}}}")


def bake(
    source,
    thresholds: Thresholds,
    *,
    extra_wait_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Sample:
    """Watch the canary for ``thresholds.bake_s`` seconds; fail as soon as it breaks a threshold.

    Args:
        source: ``sample(window_s) -> Sample``.
        thresholds: the limits.
        extra_wait_s: after the bake, how long to keep waiting for ``min_requests``.
        poll_s: seconds between reads.
    Returns:
        The last sample (the one the promotion was decided on).
    Raises:
        CanaryFailed: a threshold broken, too little traffic, or the metrics could not be read.
    """
    start = clock()
    least = max(thresholds.min_requests, 1)
    while True:
        elapsed = clock() - start
        sample = source.sample(elapsed)
        if sample.requests >= least:
            if sample.error_rate > thresholds.max_error_rate:
                raise CanaryFailed(
                    f"canary error rate {sample.error_rate:.4f} > max_error_rate {thresholds.max_error_rate:g} "
                    f"after {elapsed:.0f} s ({sample.describe()})"
                )
            if sample.p99_ms is not None and sample.p99_ms > thresholds.max_p99_latency_ms:
                raise CanaryFailed(
                    f"canary p99 latency {sample.p99_ms:.1f} ms > max_p99_latency_ms "
                    f"{thresholds.max_p99_latency_ms:g} after {elapsed:.0f} s ({sample.describe()})"
                )
            if sample.baseline is not None and sample.baseline.requests >= least:
                _compare(sample, thresholds, elapsed)
        enough = sample.requests >= thresholds.min_requests and (
            sample.baseline is None or sample.baseline.requests >= thresholds.min_requests)
        if elapsed >= thresholds.bake_s and enough:
            return sample
        if elapsed >= thresholds.bake_s + extra_wait_s:
            who = "canary" if sample.requests < thresholds.min_requests else "stable revision"
            answered = sample.requests if who == "canary" else sample.baseline.requests
            raise CanaryFailed(
                f"{who} answered only {answered:g} requests in {elapsed:.0f} s (min_requests "
                f"{thresholds.min_requests}): not enough traffic to judge the canary ({sample.describe()})"
            )
        progress.emit("push", f"canary bake {elapsed:.0f}/{thresholds.bake_s:g} s: {sample.describe()}",
                      eta_s=max(thresholds.bake_s - elapsed, 0.0))
        sleep(poll_s)


def _compare(sample: Sample, thresholds: Thresholds, elapsed: float) -> None:
    """Fail a canary that is worse than the stable revision beyond the relative limits."""
    base = sample.baseline
    allowed = base.error_rate + thresholds.max_error_rate_increase
    if sample.error_rate > allowed:
        raise CanaryFailed(
            f"canary error rate {sample.error_rate:.4f} > stable's {base.error_rate:.4f} + max_error_rate_increase "
            f"{thresholds.max_error_rate_increase:g} after {elapsed:.0f} s ({sample.describe()})"
        )
    if sample.p99_ms is not None and base.p99_ms is not None and sample.p99_ms > base.p99_ms * thresholds.max_p99_ratio:
        raise CanaryFailed(
            f"canary p99 latency {sample.p99_ms:.1f} ms > stable's {base.p99_ms:.1f} ms x max_p99_ratio "
            f"{thresholds.max_p99_ratio:g} after {elapsed:.0f} s ({sample.describe()})"
        )
