"""KFP v2 component: evaluate. Parses inputs, calls :mod:`kfpc.components.evaluate.core`, writes outputs."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kfpc.components import images
from kfpc.components.artifact_types import Blessing, Statistics


@dsl.component(base_image=images.TF, install_kfp_package=False)
def evaluate(
    data: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    blessing: Output[Blessing],
    baseline_model: Input[Model] = None,
    statistics: Input[Statistics] = None,
    config_json: str = "",
    min_accuracy: float = 0.0,
    max_regression: float = 0.01,
    split: str = "eval",
) -> bool:
    """Evaluate the candidate model (and the model now served) by slice, and decide whether to bless it.

    Args:
        data: the Dataset artifact; ``split`` is evaluated.
        model: the candidate Model artifact.
        metrics: overall candidate metrics as KFP scalars (baseline ones prefixed ``baseline_``).
        classification_metrics: confusion matrix and ROC curve (classification; empty for regression).
        report: the HTML report (plots: ROC/PR candidate vs baseline, calibration, slices, residuals).
        blessing: ``blessing.json``, ``evaluation.json``, ``BLESSED``/``NOT_BLESSED``; metadata ``blessed``,
            ``skill_metric``, ``thresholds`` (every threshold with value, interval, bound, trivial value and
            verdict), ``failed_thresholds`` (one readable line each) and ``failed_threshold_details``.
        baseline_model: the model now in production (from the push step's resolver or a ``dsl.importer``);
            omit it on a first run (change thresholds are then skipped).
        statistics: training statistics (numeric slice bucket edges); optional.
        config_json: EvalConfig JSON (see README); empty uses the default thresholds: the skill metric
            (ROC AUC; PR AUC of the minority class for imbalanced binary; R² for regression) must beat the
            trivial predictor by its bootstrap interval, and must not be shown worse than the baseline's.
        min_accuracy: default config: adds ``accuracy >= min_accuracy`` when above 0 (0 = off).
        max_regression: default config: with a baseline, the candidate fails when the paired interval shows
            its skill metric worse by more than this (absolute), or its RMSE higher by more than this
            (relative) for regression.
        split: the split to evaluate.
    Returns:
        ``blessed``, as the task's ``Output`` parameter; gate the push with
        ``dsl.If(task.outputs["Output"] == True)``. It is the plain return value rather than a NamedTuple field because
        kfp.local 2.17 resolves conditions only on ``<task>-Output`` channels (a named field such as
        ``evaluate-blessed`` is read as a missing pipeline input and the branch is silently skipped).
    """
    import shutil

    from kfpc.components.evaluate import core

    baseline_dir = baseline_model.path if baseline_model is not None else None
    statistics_dir = statistics.path if statistics is not None else None
    config = core.pipeline_config(model.path, config_json, min_accuracy=min_accuracy, max_regression=max_regression)
    result = core.evaluate(data.path, model.path, blessing.path, baseline_model_dir=baseline_dir, config=config,
                           statistics_dir=statistics_dir, split=split)
    shutil.copyfile(f"{blessing.path}/{core.REPORT_FILE}", report.path)
    for name, value in core.scalar_metrics(result).items():
        metrics.log_metric(name, value)
    if result.confusion_matrix is not None:
        classification_metrics.log_confusion_matrix(result.classes, result.confusion_matrix)
        curve = result.roc_curve
        classification_metrics.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    blessing.metadata.update(result.metadata())
    return result.blessed
