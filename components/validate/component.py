"""KFP v2 component: validate. Calls :func:`kfpc.components.validate.core.run`, writes outputs."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Input, Markdown, Output

from kfpc.components import images
from kfpc.components.artifact_types import Anomalies, Schema, Statistics


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def validate(
    statistics: Input[Statistics],
    schema: Input[Schema],
    anomalies: Output[Anomalies],
    report: Output[Markdown],
    html_report: Output[HTML],
    split: str = "eval",
    previous_statistics: Input[Statistics] = None,
    previous_split: str = "",
    serving_statistics: Input[Statistics] = None,
    serving_split: str = "",
    environment: str = "",
    fail_on_anomalies: bool = True,
    reference_split: str = "",
) -> NamedTuple("Outputs", anomaly_count=int, anomalies_found=bool, warning_count=int):
    """Validate a split's statistics against a schema (drift vs previous span, skew vs serving or another split).

    Args:
        statistics: statistics artifact of the data to validate.
        schema: schema artifact (from infer_schema or import_schema).
        anomalies: Anomalies artifact: ``anomalies.pbtxt``; metadata ``anomaly_count`` (errors),
            ``anomalies_found``, ``warning_count`` (features with warnings only).
        report: Markdown report (shown in the KFP UI).
        html_report: HTML report with the feature table and histograms per split side by side.
        split: the split to validate.
        previous_statistics: statistics of the previous span: the schema's drift comparators, else the
            sample-size-aware drift test.
        previous_split: its split (default: ``split``).
        serving_statistics: statistics of serving data: the schema's skew comparators, else the
            sample-size-aware skew test.
        serving_split: its split (default: ``split``).
        environment: schema environment of the data (e.g. ``SERVING``).
        fail_on_anomalies: fail the task, listing the errors, when any is found (after writing outputs);
            warnings never fail it.
        reference_split: another split of ``statistics`` (e.g. ``train``) that ``split`` is judged against
            for skew with the sample-size-aware test; empty: none.
    Returns:
        anomaly_count (errors), anomalies_found (any error), warning_count.
    """
    from kfpc.components.validate import core

    result = core.run(
        statistics.path,
        schema.path,
        anomalies.path,
        split=split,
        previous_dir=previous_statistics.path if previous_statistics is not None else None,
        previous_split=previous_split or None,
        serving_dir=serving_statistics.path if serving_statistics is not None else None,
        serving_split=serving_split or None,
        environment=environment or None,
        markdown_path=report.path,
        html_path=html_report.path,
        reference_split=reference_split or None,
    )
    anomalies.metadata.update(result.metadata())
    if fail_on_anomalies:
        core.raise_if_anomalies(result.anomalies, f"split {split!r}")
    return (result.count, result.count > 0, result.warnings)  # the executor maps a tuple onto the NamedTuple


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def validation_gate(anomalies: Input[Anomalies], what: str = "the validated data", fail_on_anomalies: bool = True) -> int:
    """Stop the run when validation found anomalies, after ``validate`` has recorded its artifacts.

    KFP records no output artifact of a failed task (kubeflow/pipelines#12425), so a validation that failed
    itself would lose its report exactly when the data is bad. Pipelines therefore run ``validate`` with
    ``fail_on_anomalies=False`` (it always succeeds and its reports stay in the UI) and put this step between
    it and training: it fails with the list of anomalies, and nothing downstream runs.

    Args:
        anomalies: the Anomalies artifact of ``validate``.
        what: what was validated, for the message (e.g. ``split 'eval'``).
        fail_on_anomalies: fail when there is any error; False only reports the count (warnings never fail).
    Returns:
        the number of features with errors.
    """
    from kfpc.components import artifacts
    from kfpc.components.validate import core

    found = artifacts.read_anomalies(anomalies.path)
    if fail_on_anomalies:
        core.raise_if_anomalies(found, what)
    return core.anomaly_count(found)
