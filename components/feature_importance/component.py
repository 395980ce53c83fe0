"""KFP v2 component: feature_importance. Translates artifacts, calls :mod:`kfpc.components.feature_importance.core`."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from kfpc.components import images


@dsl.component(base_image=images.TF, install_kfp_package=False)
def feature_importance(
    data: Input[Dataset],
    model: Input[Model],
    report: Output[HTML],
    metrics: Output[Metrics],
    importance: Output[Artifact],
    split: str = "eval",
    sample_rows: int = 5000,
    repeats: int = 3,
    seed: int = 42,
):
    """Permutation importance of each model feature on a split, through the model's serving predictor.

    Args:
        data: the Dataset artifact (``Split-<split>/data.parquet``).
        model: the Model artifact from train.
        report: output: HTML page with a bar chart (mean and spread per feature) and the full table.
        metrics: output: ``baseline_<metric>`` and ``importance_<feature>`` of the 10 most important features.
        importance: output: ``importance.json`` (every feature: mean, spread, each shuffle; metric, rows).
        split: the split scored; ``eval`` is the one training never saw.
        sample_rows: most rows scored (a seeded uniform sample beyond); the cost is features x repeats predictions.
        repeats: shuffles per feature.
        seed: seed of the sample and the shuffles.
    """
    import shutil

    from kfpc.components.feature_importance import core

    result = core.permutation_importance(data.path, model.path, split=split, sample_rows=sample_rows, repeats=repeats,
                                         seed=seed)
    core.write_outputs(result, importance.path)
    shutil.copyfile(f"{importance.path}/{core.REPORT_FILE}", report.path)
    for name, value in result.top_metrics().items():
        metrics.log_metric(name, value)
    importance.metadata.update({"metric": result.metric, "baseline": result.baseline, "rows": result.rows,
                                "top_features": [s.feature for s in result.features[:core.TOP_METRICS]]})
