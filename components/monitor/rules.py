"""Prometheus alert rules and a Grafana dashboard for a served kfpc model, from its reference.

The series are the kfpc model server's own (``serving/observability.py``): ``kfpc_requests_total``,
``kfpc_request_latency_seconds``, ``kfpc_prediction_score`` (histogram, buckets :data:`SCORE_BUCKETS`),
``kfpc_prediction_value``, ``kfpc_batch_rows``, ``kfpc_feature_missing_total``,
``kfpc_feature_value`` (count/sum) and ``kfpc_feature_category_total``. The reference (what the model was
trained and evaluated on) becomes constant recording rules (``kfpc:reference_*``), so the served shares
and the reference are joined inside Prometheus and every alert reads as one comparison.

Every alert is gated by a sample size (requests or rows in the window): a quiet hour cannot alert. Shares
(error rates, missing rates) also need a margin of ``z`` binomial standard errors above their limit, and the
distribution alerts (PSI) need as many samples as make the PSI of a clean sample of the reference stay
below half the threshold with probability 0.999 (``n * PSI`` is about chi-square with ``k - 1`` degrees of
freedom for ``k`` buckets).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

from kfpc.components import defaults as D

#: upper bounds of ``kfpc_prediction_score``'s buckets, as the server declares them (0.05 ... 1.0)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
OTHER = "__other__"  # the server's label for string values beyond its cap; here also "not in the reference"
PSI_EPSILON = 1e-4  # as validate's PSI: an empty bucket on one side stays finite
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_RULE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class RulesError(ValueError):
    """Bad thresholds or reference; the message names the field and the value."""


@dataclasses.dataclass(frozen=True)
class AlertThresholds:
    """When the generated alerts fire.

    Attributes:
        window: PromQL range every rate/share is measured over (``10m``).
        for_duration: how long a condition must hold before the alert fires (``for:``).
        min_requests: requests in the window before error-rate, latency and throughput alerts may fire.
        max_error_rate: highest share of 5xx answers.
        max_client_error_rate: highest share of 4xx answers (a client sending a broken schema).
        max_p99_latency_ms: highest p99 request latency.
        throughput_drop: fire when the request rate falls below this share of the rate ``throughput_offset`` ago.
        throughput_offset: the baseline of the throughput alert (``1d``: same time yesterday).
        min_ready: replicas that must be up.
        max_psi: highest PSI of the served score histogram (and of each categorical feature's shares) vs
            the reference.
        max_missing_increase: highest rise of a feature's missing share over its training share.
        max_mean_shift: highest shift of a numeric feature's (or a regression's prediction) mean, in
            training standard deviations.
        z: binomial / mean standard errors a share or mean must exceed its limit by (noise margin).
        min_samples: rows before distribution alerts may fire; 0 = from the noise of a clean sample (see the
            module docstring), at least ``min_requests``.
    """

    window: str = "10m"
    for_duration: str = "5m"
    min_requests: int = D.ALERT_MIN_REQUESTS
    max_error_rate: float = 0.01
    max_client_error_rate: float = 0.1
    max_p99_latency_ms: float = 1000.0
    throughput_drop: float = 0.5
    throughput_offset: str = "1d"
    min_ready: int = 1
    max_psi: float = 0.2
    max_missing_increase: float = 0.05
    max_mean_shift: float = 0.5
    z: float = 4.0
    min_samples: int = 0

    def __post_init__(self) -> None:
        for name in ("window", "for_duration", "throughput_offset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _DURATION.match(value):
                raise RulesError(f"threshold {name}={value!r} is not a Prometheus duration such as '10m'")
        ranges = {"min_requests": (1, None), "max_error_rate": (0, 1), "max_client_error_rate": (0, 1),
                  "max_p99_latency_ms": (0, None), "throughput_drop": (0, 1), "min_ready": (1, None),
                  "max_psi": (0, None), "max_missing_increase": (0, 1), "max_mean_shift": (0, None),
                  "z": (0, None), "min_samples": (0, None)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
            if bad or value < low or (high is not None and value > high) or (value == 0 and name in (
                    "max_p99_latency_ms", "throughput_drop", "max_psi", "max_mean_shift")):
                raise RulesError(f"threshold {name}={value!r} is out of range")

    def samples_for(self, buckets: int) -> int:
        """Rows a PSI over ``buckets`` buckets needs before it may alert (``min_samples`` when set)."""
        if self.min_samples:
            return int(self.min_samples)
        return max(self.min_requests, noise_samples(buckets, self.max_psi / 2))


def chi2_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of a chi-square with ``df`` degrees of freedom (bisection on validate's sf)."""
    from kfpc.components.validate.shift import chi2_sf

    low, high = 0.0, max(50.0, df * 10.0)
    for _ in range(200):
        mid = (low + high) / 2
        if chi2_sf(mid, df) > 1 - p:
            low = mid
        else:
            high = mid
    return high


def noise_samples(buckets: int, psi: float, p: float = 0.999) -> int:
    """Smallest n with P(PSI of n clean samples > psi) < 1 - p, from n * PSI ~ chi-square(buckets - 1)."""
    return int(math.ceil(chi2_quantile(p, max(buckets - 1, 1)) / psi))


# --------------------------------------------------------------------------- PromQL text


def promql_string(value: str) -> str:
    """A PromQL string literal (Go's quoting: ``"`` and ``\\`` escaped, control characters as ``\\uXXXX``)."""
    return json.dumps(value, ensure_ascii=False)


def _num(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")


def le_label(bound: float) -> str:
    """The ``le`` label prometheus_client writes for a bucket bound (``0.05``, ``1.0``)."""
    return repr(float(bound))


class _Q:
    """PromQL fragments over one model's series: ``selector`` picks them, ``model`` names the result."""

    def __init__(self, selector: str, model_name: str, window: str):
        self.sel, self.window = selector, window
        self.model = f"model_name={promql_string(model_name)}"

    def inc(self, metric: str, *matchers: str, by: str = "model_name") -> str:
        inner = ",".join([self.sel, *matchers])
        return f"sum by ({by}) (increase({metric}{{{inner}}}[{self.window}]))"

    def rec(self, name: str, *matchers: str) -> str:
        return f"{name}{{{','.join([self.model, *matchers])}}}"


# --------------------------------------------------------------------------- rules


def _alert(name: str, expr: str, for_duration: str, severity: str, summary: str, labels: dict | None = None) -> dict:
    return {"alert": name, "expr": expr, "for": for_duration,
            "labels": {"severity": severity, **(labels or {})},
            "annotations": {"summary": summary}}


def _record(name: str, expr: str, labels: dict | None = None) -> dict:
    rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def rule_groups(reference: dict, thresholds: AlertThresholds | None = None, *, selector: str = "",
                target_selector: str = "") -> list[dict]:
    """The Prometheus rule groups (recording + alerting) for one served model.

    Args:
        reference: from :func:`kfpc.components.monitor.reference.build_reference` (``model_name``, ``task``,
            ``score_shares`` or ``prediction``, ``features``).
        thresholds: the limits (defaults: :class:`AlertThresholds`).
        selector: label matchers (no braces) picking the model's series; default ``model_name="<name>"``.
        target_selector: label matchers picking the model's scrape targets in ``up`` (readiness); default
            the selector without ``model_name`` plus ``job=~".+"``.
    Returns:
        ``[{"name", "interval"?, "rules": [...]}, ...]``: the ``groups`` of a rule file.
    """
    t = thresholds or AlertThresholds()
    name = reference.get("model_name")
    if not isinstance(name, str) or not name:
        raise RulesError(f"reference: model_name must be a non-empty string, got {name!r}")
    selector = selector or f"model_name={promql_string(name)}"
    if "model_name" not in selector:
        raise RulesError(f"selector {selector!r} must match model_name (recorded series are keyed by it)")
    target_selector = target_selector or 'job=~".+"'
    q = _Q(selector, name, t.window)
    labels = {"model_name": name}
    requests, rows = q.rec("kfpc:requests:increase"), q.rec("kfpc:rows:increase")
    records = [
        _record("kfpc:requests:increase", q.inc("kfpc_requests_total")),
        _record("kfpc:rows:increase", q.inc("kfpc_batch_rows_sum")),
    ]
    gate = f"and on(model_name) {requests} >= {t.min_requests}"
    alerts = []
    for alert, codes, limit, severity, what in (
            ("KfpcServerErrors", "5..", t.max_error_rate, "critical", "5xx answers"),
            ("KfpcClientErrors", "4..", t.max_client_error_rate, "warning", "4xx answers (rejected requests)")):
        margin = t.z * math.sqrt(limit * (1 - limit))
        alerts.append(_alert(
            alert,
            f"{q.inc('kfpc_requests_total', f'code=~{promql_string(codes)}')} > {_num(limit)} * {requests} + "
            f"{_num(margin)} * sqrt({requests}) {gate}",
            t.for_duration, severity,
            f"{name}: share of {what} above {limit:g} over {t.window} (at least {t.min_requests} requests)",
            labels))
    alerts.append(_alert(
        "KfpcLatencyP99",
        f"histogram_quantile(0.99, sum by (model_name, le) (rate(kfpc_request_latency_seconds_bucket{{{selector}}}"
        f"[{t.window}]))) > {_num(t.max_p99_latency_ms / 1000.0)} {gate}",
        t.for_duration, "warning", f"{name}: p99 latency above {t.max_p99_latency_ms:g} ms over {t.window}", labels))
    alerts.append(_alert(
        "KfpcNotReady", f"(sum(up{{{target_selector}}}) or on() vector(0)) < {t.min_ready}",
        t.for_duration, "critical", f"{name}: fewer than {t.min_ready} replica(s) up", labels))
    before = f"sum by (model_name) (increase(kfpc_requests_total{{{selector}}}[{t.window}] offset {t.throughput_offset}))"
    alerts.append(_alert(
        "KfpcThroughputDrop",
        f"{requests} < {_num(t.throughput_drop)} * {before} and on(model_name) {before} >= {t.min_requests}",
        t.for_duration, "warning",
        f"{name}: requests over {t.window} fell below {t.throughput_drop:g} of {t.throughput_offset} before", labels))

    score_shares = reference.get("score_shares")
    if score_shares:
        if len(score_shares) != len(SCORE_BUCKETS):
            raise RulesError(f"reference: score_shares has {len(score_shares)} values, the server's score histogram "
                             f"has {len(SCORE_BUCKETS)} buckets")
        count = q.rec("kfpc:prediction_score_count:increase")
        records.append(_record("kfpc:prediction_score_count:increase", q.inc("kfpc_prediction_score_count")))
        previous = None
        for bound, share in zip(SCORE_BUCKETS, score_shares, strict=True):
            upper = q.inc("kfpc_prediction_score_bucket", f"le={promql_string(le_label(bound))}")
            lower = (f" - {q.inc('kfpc_prediction_score_bucket', f'le={promql_string(le_label(previous))}')}"
                     if previous is not None else "")
            bucket = {**labels, "bucket": le_label(bound)}
            records.append(_record("kfpc:prediction_score_share", f"clamp_min(({upper}{lower}) / {count}, 0)", bucket))
            records.append(_record("kfpc:reference_score_share", f"vector({_num(share)})", bucket))
            previous = bound
        records.append(_record("kfpc:prediction_score_psi", _psi(
            q.rec("kfpc:prediction_score_share"), q.rec("kfpc:reference_score_share"), "model_name, bucket",
            "model_name")))
        buckets = sum(1 for s in score_shares if s > 0) or 1
        alerts.append(_alert(
            "KfpcPredictionShift",
            f"{q.rec('kfpc:prediction_score_psi')} > {_num(t.max_psi)} and on(model_name) {count} >= "
            f"{t.samples_for(buckets)}",
            t.for_duration, "warning",
            f"{name}: PSI of the served score histogram vs the evaluation's predictions above {t.max_psi:g}", labels))
    prediction = reference.get("prediction")
    if prediction and prediction.get("std"):
        mean = (f"({q.inc('kfpc_prediction_value_sum')} / {q.inc('kfpc_prediction_value_count')})")
        alerts.append(_mean_alert("KfpcPredictionMeanShift", mean, q.inc("kfpc_prediction_value_count"),
                                  prediction["mean"], prediction["std"], t,
                                  f"{name}: mean prediction moved more than {t.max_mean_shift:g} std", labels))

    categorical = []
    for feature in reference.get("features", []):
        fname = feature["name"]
        fsel = f"feature={promql_string(fname)}"
        flabels = {**labels, "feature": fname}
        missing = feature.get("missing_share")
        if missing is not None:
            margin = t.z * math.sqrt(missing * (1 - missing))
            alerts.append(_alert(
                "KfpcFeatureMissingRate",
                f"{q.inc('kfpc_feature_missing_total', fsel)} / {rows} - {_num(missing)} > "
                f"{_num(t.max_missing_increase)} + {_num(margin)} / sqrt({rows}) and on(model_name) {rows} >= "
                f"{t.min_requests}",
                t.for_duration, "warning",
                f"{name}: feature {fname!r} missing more than {missing:.4g} + {t.max_missing_increase:g} of rows",
                flabels))
        if feature.get("kind") == "numeric" and feature.get("std"):
            count = q.inc("kfpc_feature_value_count", fsel)
            mean = f"({q.inc('kfpc_feature_value_sum', fsel)} / {count})"
            alerts.append(_mean_alert("KfpcFeatureMeanShift", mean, count, feature["mean"], feature["std"], t,
                                      f"{name}: mean of feature {fname!r} moved more than {t.max_mean_shift:g} "
                                      f"training std", flabels))
        if feature.get("kind") == "categorical" and feature.get("categories"):
            categorical.append(feature)
    if categorical:
        count = q.rec("kfpc:feature_category_count:increase")
        reference_share = q.rec("kfpc:reference_category_share")
        known_reference = q.rec("kfpc:reference_category_share", f"value!={promql_string(OTHER)}")
        records.append(_record("kfpc:feature_category_count:increase",
                               q.inc("kfpc_feature_category_total", by="model_name, feature")))
        records.append(_record(
            "kfpc:feature_category_share",
            f"{q.inc('kfpc_feature_category_total', by='model_name, feature, value')} / on(model_name, feature) "
            f"group_left {count}"))
        for feature in categorical:
            for value, share in feature["categories"].items():
                records.append(_record("kfpc:reference_category_share", f"vector({_num(share)})",
                                       {**labels, "feature": feature["name"], "value": value}))
        # served shares of the reference's categories (0 where unseen), and the rest as __other__
        records.append(_record(
            "kfpc:feature_category_known_share",
            f"({q.rec('kfpc:feature_category_share')} and on(model_name, feature, value) {known_reference}) "
            f"or on(model_name, feature, value) (0 * {known_reference})"))
        records.append(_record(
            "kfpc:feature_category_served_share",
            f"{q.rec('kfpc:feature_category_known_share')} or label_replace(clamp_min(1 - sum by (model_name, "
            f"feature) ({q.rec('kfpc:feature_category_known_share')}), 0), \"value\", {promql_string(OTHER)}, "
            f"\"\", \"\")"))
        records.append(_record("kfpc:feature_category_psi", _psi(
            q.rec("kfpc:feature_category_served_share"), reference_share, "model_name, feature, value",
            "model_name, feature")))
        buckets = max(len(f["categories"]) for f in categorical)
        alerts.append(_alert(
            "KfpcFeatureCategoryDrift",
            f"{q.rec('kfpc:feature_category_psi')} > {_num(t.max_psi)} and on(model_name, feature) {count} >= "
            f"{t.samples_for(buckets)}",
            t.for_duration, "warning",
            f"{name}: PSI of a categorical feature's served value shares vs training above {t.max_psi:g}", labels))
    return [
        {"name": f"kfpc-{_slug(name)}-records", "rules": records},
        {"name": f"kfpc-{_slug(name)}-alerts", "rules": alerts},
    ]


def _psi(served: str, reference: str, join: str, by: str) -> str:
    eps = _num(PSI_EPSILON)
    return (f"sum by ({by}) (({served} - on({join}) {reference}) * ln(({served} + {eps}) / on({join}) "
            f"({reference} + {eps})))")


def _mean_alert(alert: str, mean: str, count: str, mu: float, sd: float, t: AlertThresholds, summary: str,
                labels: dict) -> dict:
    shift = f"abs({mean} - {_num(mu)})"
    return _alert(
        alert,
        f"{shift} > {_num(t.max_mean_shift * sd)} and on(model_name) {shift} > {_num(t.z * sd)} / sqrt({count}) "
        f"and on(model_name) {count} >= {t.min_requests}",
        t.for_duration, "warning", summary, labels)


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return slug[:40] or "model"


def prometheus_rule(groups: list[dict], name: str, namespace: str, labels: dict | None = None) -> dict:
    """A prometheus-operator ``PrometheusRule`` (``monitoring.coreos.com/v1``) holding ``groups``.

    Args:
        groups: from :func:`rule_groups`.
        name: the model (InferenceService) name; the object is ``<name>-kfpc-monitoring``.
        namespace: its namespace.
        labels: extra metadata labels (e.g. the ``ruleSelector`` of your Prometheus, ``release: prometheus``).
    """
    object_name = f"{_slug(name)}-kfpc-monitoring"
    if not _RULE_NAME.match(object_name) or len(object_name) > 253:
        raise RulesError(f"name {name!r} gives no valid object name ({object_name!r})")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": object_name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kfpc", "kfpc.dev/model": _slug(name),
                                **(labels or {})}},
        "spec": {"groups": groups},
    }


# --------------------------------------------------------------------------- dashboard


def dashboard(reference: dict, thresholds: AlertThresholds | None = None, *, selector: str = "") -> dict:
    """A Grafana dashboard (JSON model, schemaVersion 39) over the same series and recording rules.

    Args:
        reference: as for :func:`rule_groups`.
        thresholds: drawn as threshold lines.
        selector: as for :func:`rule_groups`.
    """
    t = thresholds or AlertThresholds()
    name = reference["model_name"]
    selector = selector or f"model_name={promql_string(name)}"
    q = _Q(selector, name, t.window)
    w = "$__rate_interval"
    panels: list[tuple[str, list[tuple[str, str]], str, float | None]] = [
        ("Requests per second by code", [
            (f"sum by (code) (rate(kfpc_requests_total{{{selector}}}[{w}]))", "{{code}}")], "reqps", None),
        ("5xx share", [(f"sum(rate(kfpc_requests_total{{{selector},code=~\"5..\"}}[{w}])) / "
                        f"sum(rate(kfpc_requests_total{{{selector}}}[{w}]))", "5xx")], "percentunit", t.max_error_rate),
        ("4xx share", [(f"sum(rate(kfpc_requests_total{{{selector},code=~\"4..\"}}[{w}])) / "
                        f"sum(rate(kfpc_requests_total{{{selector}}}[{w}]))", "4xx")], "percentunit",
         t.max_client_error_rate),
        ("Latency", [(f"histogram_quantile({p}, sum by (le) (rate(kfpc_request_latency_seconds_bucket{{{selector}}}"
                      f"[{w}])))", f"p{int(p * 100)}") for p in (0.5, 0.9, 0.99)], "s",
         t.max_p99_latency_ms / 1000.0),
        ("Replicas up", [("sum(up)", "up")], "none", None),
        ("Rows per second", [(f"sum(rate(kfpc_batch_rows_sum{{{selector}}}[{w}]))", "rows")], "rowsps", None),
    ]
    if reference.get("score_shares"):
        panels.append(("Prediction score PSI vs evaluation", [(q.rec("kfpc:prediction_score_psi"), "psi")],
                       "none", t.max_psi))
        panels.append(("Score shares: served vs evaluation", [
            (q.rec("kfpc:prediction_score_share"), "served le {{bucket}}"),
            (q.rec("kfpc:reference_score_share"), "evaluation le {{bucket}}")], "percentunit", None))
    if reference.get("prediction"):
        panels.append(("Mean prediction", [(f"{q.inc('kfpc_prediction_value_sum')} / "
                                            f"{q.inc('kfpc_prediction_value_count')}", "mean")], "none", None))
    panels.append(("Missing share by feature", [(
        f"sum by (feature) (rate(kfpc_feature_missing_total{{{selector}}}[{w}])) / scalar(sum(rate("
        f"kfpc_batch_rows_sum{{{selector}}}[{w}])))", "{{feature}}")], "percentunit", None))
    if any(f.get("kind") == "numeric" for f in reference.get("features", [])):
        panels.append(("Numeric feature means", [(
            f"sum by (feature) (rate(kfpc_feature_value_sum{{{selector}}}[{w}])) / sum by (feature) "
            f"(rate(kfpc_feature_value_count{{{selector}}}[{w}]))", "{{feature}}")], "none", None))
    if any(f.get("kind") == "categorical" and f.get("categories") for f in reference.get("features", [])):
        panels.append(("Category PSI by feature vs training", [(q.rec("kfpc:feature_category_psi"), "{{feature}}")],
                       "none", t.max_psi))
    out = []
    for i, (title, targets, unit, threshold) in enumerate(panels):
        steps = [{"color": "green", "value": None}]
        if threshold is not None:
            steps.append({"color": "red", "value": threshold})
        out.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                                         "custom": {"thresholdsStyle": {"mode": "line" if threshold else "off"}}},
                            "overrides": []},
            "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (expr, legend) in enumerate(targets)],
        })
    return {
        "title": f"kfpc model {name}", "uid": f"kfpc-{_slug(name)}"[:40], "tags": ["kfpc", "model-monitoring"],
        "schemaVersion": 39, "timezone": "utc", "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": out,
    }


def dashboard_queries(board: dict) -> list[str]:
    """Every PromQL expression of a dashboard, with Grafana's ``$__rate_interval`` as ``1m`` (for checks)."""
    return [target["expr"].replace("$__rate_interval", "1m") for panel in board["panels"] for target in panel["targets"]]
