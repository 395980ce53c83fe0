"""Monitoring a served kfpc model: alert rules + dashboard at push, drift analysis of payload logs later.

* :func:`write_monitoring_config` writes ``prometheusrule.yaml`` (prometheus-operator), ``rules.yaml`` (the
  same groups as a plain Prometheus / promtool rule file), ``dashboard.json`` (Grafana) and
  ``reference.json`` from the model card, the training statistics and the evaluation's predictions.
* :func:`monitor_window` reads the payload logs of a time window, computes their statistics with the
  statistics engine, validates them for skew vs training and drift vs the previous window, and writes the
  verdict (``verdict.json``), the window's statistics and the reports.

Plain Python: no kfp import; TensorFlow only in :func:`reference.eval_outputs` (called by the component).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import yaml

from kfpc.components._fs import atomic_dir

from . import analysis, reference, rules
from .rules import AlertThresholds, RulesError

PROMETHEUS_RULE_FILE = "prometheusrule.yaml"
RULES_FILE = "rules.yaml"
DASHBOARD_FILE = "dashboard.json"
REFERENCE_FILE = "reference.json"
VERDICT_FILE = "verdict.json"
SERVING_SPLIT = "serving"
PREVIOUS_SPLIT = "previous"


# --- the few reads of other components' artifacts (repointed to kfpc.components.artifacts when it lands) ---
def _load_card(model_dir) -> dict:
    from kfpc.components.contract import read_card as load_model_card

    return load_model_card(model_dir)


def _load_statistics(stats_dir, split: str | None):
    from kfpc.components.artifacts import read_statistics as load_statistics

    return load_statistics(stats_dir, split)


def _load_schema(path):
    from kfpc.components.artifacts import read_schema as load_schema

    return load_schema(path)


def default_selectors(name: str, namespace: str) -> tuple[str, str]:
    """Series selector and readiness target selector of an InferenceService ``name`` in ``namespace``."""
    q = rules.promql_string
    if not namespace:
        return f"model_name={q(name)}", f"job=~{q('.+')}"
    return (f"namespace={q(namespace)},model_name={q(name)}",
            f"namespace={q(namespace)},pod=~{q(name + '-predictor-.*')}")


def write_monitoring_config(output_dir: str | os.PathLike, card: dict, statistics, *, model_name: str,
                            namespace: str = "default", scores=None, predictions=None,
                            thresholds: AlertThresholds | None = None, selector: str = "", target_selector: str = "",
                            rule_labels: dict | None = None) -> dict:
    """Write the PrometheusRule, the plain rule file, the Grafana dashboard and the reference, atomically.

    Args:
        output_dir: folder to create (absent or empty).
        card: the model card.
        statistics: training statistics (the ``train`` split's proto).
        model_name: the served name (InferenceService name, the ``model_name`` label).
        namespace: the InferenceService's namespace (PrometheusRule's namespace; default selectors).
        scores / predictions: the evaluation's scores (classification) / predictions (regression).
        thresholds: alert limits.
        selector / target_selector: see :func:`rules.rule_groups`; empty: :func:`default_selectors`.
        rule_labels: extra labels on the PrometheusRule (your Prometheus' ``ruleSelector``).
    Returns:
        Artifact metadata: ``alerts`` (names), ``rules`` (count), ``model_name``, ``namespace``, ``score_reference``.
    """
    thresholds = thresholds or AlertThresholds()
    default_selector, default_targets = default_selectors(model_name, namespace)
    ref = reference.build_reference(card, statistics, model_name=model_name, scores=scores, predictions=predictions)
    groups = rules.rule_groups(ref, thresholds, selector=selector or default_selector,
                               target_selector=target_selector or default_targets)
    board = rules.dashboard(ref, thresholds, selector=selector or default_selector)
    with atomic_dir(output_dir) as scratch:
        dump = {"sort_keys": False, "allow_unicode": True, "width": 1 << 20}
        (scratch / PROMETHEUS_RULE_FILE).write_text(
            yaml.safe_dump(rules.prometheus_rule(groups, model_name, namespace, rule_labels), **dump), encoding="utf-8")
        (scratch / RULES_FILE).write_text(yaml.safe_dump({"groups": groups}, **dump), encoding="utf-8")
        (scratch / DASHBOARD_FILE).write_text(json.dumps(board, indent=2, ensure_ascii=False), encoding="utf-8")
        (scratch / REFERENCE_FILE).write_text(json.dumps(
            {"reference": ref, "thresholds": vars(thresholds)}, indent=2, ensure_ascii=False), encoding="utf-8")
    alerts = sorted({r["alert"] for g in groups for r in g["rules"] if "alert" in r})
    return {"alerts": alerts, "rules": sum(len(g["rules"]) for g in groups), "model_name": model_name,
            "namespace": namespace, "score_reference": "score_shares" in ref or "prediction" in ref}


def monitoring_config_from_artifacts(output_dir, model_dir, statistics_dir, data_dir=None, *, model_name: str,
                                     namespace: str = "default", statistics_split: str = "train",
                                     eval_split: str = "eval", **options) -> dict:
    """:func:`write_monitoring_config` from artifact folders; with ``data_dir`` the model predicts its eval
    split for the score reference (TensorFlow)."""
    card = _load_card(model_dir)
    statistics = _load_statistics(statistics_dir, statistics_split)
    scores = predictions = None
    if data_dir:
        scores, predictions = reference.eval_outputs(model_dir, data_dir, eval_split)
    return write_monitoring_config(output_dir, card, statistics, model_name=model_name, namespace=namespace,
                                   scores=scores, predictions=predictions, **options)


def window_bounds(window_end: str, window_seconds: float, now: dt.datetime | None = None):
    """``(previous_start, start, end)`` of the window ending at ``window_end`` (empty: now)."""
    if not window_seconds or window_seconds <= 0:
        raise analysis.MonitorError(f"window_seconds must be positive, got {window_seconds!r}")
    end = analysis.parse_time(window_end, "window_end") if window_end else (now or dt.datetime.now(dt.UTC))
    length = dt.timedelta(seconds=float(window_seconds))
    return end - 2 * length, end - length, end


def monitor_window(output_dir: str | os.PathLike, payload_uri: str, model_dir, training_statistics_dir, *,
                   schema_path=None, training_split: str = "train", window_end: str = "",
                   window_seconds: float = 86400.0, min_rows: int = 200, min_drifted_features: int = 1,
                   markdown_path=None, html_path=None) -> analysis.WindowResult:
    """Analyze one window of payload logs and write its statistics, anomalies and verdict.

    Args:
        output_dir: folder to create: ``Split-serving/FeatureStats.pb`` (and ``Split-previous/`` when the
            previous window has rows), ``skew_anomalies.pbtxt``, ``drift_anomalies.pbtxt``, ``verdict.json``.
        payload_uri: payload log file or folder (local, ``gs://``, ``s3://``).
        model_dir: the served Model artifact (its card names the features and the label).
        training_statistics_dir: the training statistics artifact (split ``training_split``).
        schema_path: the schema; None: inferred from the training statistics.
        window_end / window_seconds: the window ``[end - seconds, end)``; the previous one is just before it.
        min_rows / min_drifted_features: see :func:`analysis.analyze`.
        markdown_path / html_path: report files to write.
    Returns:
        The :class:`analysis.WindowResult`.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from kfpc.components import types
    from kfpc.components.statistics.core import generate_statistics

    card = _load_card(model_dir)
    training = _load_statistics(training_statistics_dir, training_split).datasets[0]
    if schema_path:
        from kfpc.components._fs import local_path

        schema = _load_schema(local_path(str(schema_path)))
    else:
        from kfpc.components.schema.core import infer_schema

        schema = infer_schema(training)
    schema = analysis.serving_schema(schema, card.get(types.LABEL))
    previous_start, start, end = window_bounds(window_end, window_seconds)
    features = card.get(types.FEATURES) or []
    if not features:
        raise analysis.MonitorError(f"{model_dir}: the model card lists no features")
    current_table = analysis._typed_like(analysis.read_payload(payload_uri, start, end, features), training)
    previous_table = analysis._typed_like(analysis.read_payload(payload_uri, previous_start, start, features), training)
    current = generate_statistics(current_table, SERVING_SPLIT, threads=1)
    previous = generate_statistics(previous_table, PREVIOUS_SPLIT, threads=1) if previous_table.num_rows else None
    result, skew, drift = analysis.analyze(current, training, schema, previous, min_rows=min_rows,
                                           min_drifted_features=min_drifted_features)
    window_text = f"{start.isoformat(timespec='seconds')} to {end.isoformat(timespec='seconds')}"
    with atomic_dir(output_dir) as scratch:
        for split, stats in ((SERVING_SPLIT, current), (PREVIOUS_SPLIT, previous)):
            if stats is not None:
                (scratch / types.SPLIT_DIR.format(split=split)).mkdir()
                (scratch / types.SPLIT_DIR.format(split=split) / types.STATS_FILE).write_bytes(
                    statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats]).SerializeToString())
        (scratch / "skew_anomalies.pbtxt").write_text(text_format.MessageToString(skew))
        if drift is not None:
            (scratch / "drift_anomalies.pbtxt").write_text(text_format.MessageToString(drift))
        (scratch / VERDICT_FILE).write_text(json.dumps({
            **result.metrics(), "window_start": start.isoformat(), "window_end": end.isoformat(),
            "previous_window_start": previous_start.isoformat(), "payload_uri": payload_uri,
            "drift_confirmed": result.drift_confirmed, "reason": result.reason,
            "skew_features": result.skew_features, "drift_features": result.drift_features}, indent=2, ensure_ascii=False))
    text = analysis.render_markdown(result, window_text)
    if markdown_path:
        Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown_path).write_text(text, encoding="utf-8")
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(analysis.render_html(text), encoding="utf-8")
    return result


__all__ = ["AlertThresholds", "RulesError", "write_monitoring_config", "monitoring_config_from_artifacts",
           "monitor_window", "window_bounds", "default_selectors"]
