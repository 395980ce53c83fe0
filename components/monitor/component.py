"""KFP v2 components: monitoring_config (alert rules + dashboard at push) and monitor_window (payload drift)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from kfpc.components import images
from kfpc.components.artifact_types import Statistics


@dsl.component(base_image=images.TF, install_kfp_package=False)
def monitoring_config(
    model: Input[Model],
    statistics: Input[Statistics],
    monitoring: Output[Artifact],
    model_name: str,
    data: Input[Dataset] = None,
    namespace: str = "default",
    statistics_split: str = "train",
    eval_split: str = "eval",
    window: str = "10m",
    for_duration: str = "5m",
    min_requests: int = 100,
    max_error_rate: float = 0.01,
    max_client_error_rate: float = 0.1,
    max_p99_latency_ms: float = 1000.0,
    throughput_drop: float = 0.5,
    throughput_offset: str = "1d",
    max_psi: float = 0.2,
    max_missing_increase: float = 0.05,
    max_mean_shift: float = 0.5,
    min_samples: int = 0,
    selector: str = "",
    target_selector: str = "",
):
    """Alert rules (PrometheusRule) and a Grafana dashboard for the served model.

    Args:
        model: the Model artifact (its card names the features, task and classes).
        statistics: training statistics (``statistics_split``): missing shares, means, category shares.
        monitoring: folder with ``prometheusrule.yaml``, ``rules.yaml``, ``dashboard.json``, ``reference.json``.
        model_name: the InferenceService name (the server's ``model_name`` label).
        data: the Dataset; its ``eval_split`` is predicted for the score-distribution reference (PSI alert).
        namespace: the InferenceService namespace.
        window, for_duration, min_requests, max_error_rate, max_client_error_rate, max_p99_latency_ms,
            throughput_drop, throughput_offset, max_psi, max_missing_increase, max_mean_shift, min_samples:
            :class:`kfpc.components.monitor.rules.AlertThresholds`.
        selector / target_selector: label matchers of the model's series / scrape targets; empty: from
            ``namespace`` and ``model_name``.
    """
    from kfpc.components.monitor import core

    thresholds = core.AlertThresholds(
        window=window, for_duration=for_duration, min_requests=min_requests, max_error_rate=max_error_rate,
        max_client_error_rate=max_client_error_rate, max_p99_latency_ms=max_p99_latency_ms,
        throughput_drop=throughput_drop, throughput_offset=throughput_offset, max_psi=max_psi,
        max_missing_increase=max_missing_increase, max_mean_shift=max_mean_shift, min_samples=min_samples)
    metadata = core.monitoring_config_from_artifacts(
        monitoring.path, model.path, statistics.path, data.path if data is not None else None,
        model_name=model_name, namespace=namespace, statistics_split=statistics_split, eval_split=eval_split,
        thresholds=thresholds, selector=selector, target_selector=target_selector)
    monitoring.metadata.update(metadata)
    monitoring.metadata["kind"] = "monitoring"


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def monitor_window(
    model: Input[Model],
    training_statistics: Input[Statistics],
    window: Output[Artifact],
    report: Output[Markdown],
    html_report: Output[HTML],
    metrics: Output[Metrics],
    payload_uri: str,
    schema_uri: str = "",
    training_split: str = "train",
    window_end: str = "",
    window_seconds: float = 86400.0,
    min_rows: int = 200,
    min_drifted_features: int = 1,
) -> NamedTuple("Outputs", drift_confirmed=bool, reason=str):
    """Skew vs training and drift vs the previous window of the served traffic (payload logs).

    Args:
        model: the served Model artifact (features and label from its card).
        training_statistics: statistics the model was trained on.
        window: folder: ``Split-serving/`` and ``Split-previous/`` statistics, ``skew_anomalies.pbtxt``,
            ``drift_anomalies.pbtxt``, ``verdict.json``; metadata as ``metrics``.
        report / html_report: the verdict, why, the shifted features and all anomalies.
        metrics: rows, previous_rows, skewed_features, drifted_features, drift_confirmed.
        payload_uri: the server's payload log file or folder (local, ``gs://``, ``s3://``).
        schema_uri: the production ``schema.pbtxt`` (local, ``gs://``); empty: inferred from the training statistics.
        training_split: split of ``training_statistics``.
        window_end: ISO-8601 end of the window; empty: now.
        window_seconds: window length; the previous window is the one before.
        min_rows: rows needed for a verdict.
        min_drifted_features: features shifted vs training that confirm drift.
    Returns:
        drift_confirmed, reason.
    """
    from kfpc.components.monitor import core

    result = core.monitor_window(
        window.path, payload_uri, model.path, training_statistics.path,
        schema_path=schema_uri or None, training_split=training_split,
        window_end=window_end, window_seconds=window_seconds, min_rows=min_rows,
        min_drifted_features=min_drifted_features, markdown_path=report.path, html_path=html_report.path)
    for key, value in result.metrics().items():
        metrics.log_metric(key, value)
    window.metadata.update({**result.metrics(), "kind": "monitoring_window", "reason": result.reason})
    return (result.drift_confirmed, result.reason)
