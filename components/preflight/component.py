"""KFP v2 component: preflight. Parses inputs, calls :mod:`kfpc.components.preflight.core`, writes the report."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from kfpc.components import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def preflight(
    source_uri: str,
    label: str,
    report: Output[Markdown],
    task: str = "auto",
    key_column: str = "",
    eval_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    exclude_columns: list[str] = [],  # noqa: B006 (KFP reads the default from the signature)
    numeric_columns: list[str] = [],  # noqa: B006
    hidden_units: list[int] = [64, 32],  # noqa: B006
    dropout: float = 0.1,
    learning_rate: float = 0.01,
    batch_size: int = 0,
    epochs: int = 100,
    patience: int = 10,
    min_accuracy: float = 0.0,
    max_regression: float = 0.01,
    eval_config_json: str = "",
    model_name: str = "",
    namespace: str = "",
    push_mode: str = "",
    canary_traffic_percent: int = 0,
    promote: bool = False,
    prometheus_url: str = "",
    prometheus_selector: str = "",
) -> list:
    """Check the run's parameters and its source table before anything expensive runs. Never retried.

    Args:
        source_uri: the table the run ingests.
        label: the label column.
        report: Markdown: rows, labelled rows, task, classes, dropped columns, warnings.
        task, key_column, eval_fraction, exclude_columns, numeric_columns: as the pipeline passes them on.
        validation_fraction: the share of the train split training early-stops on (range check).
        hidden_units, dropout, learning_rate, batch_size, epochs, patience: training hyperparameters (ranges).
        min_accuracy, max_regression, eval_config_json: evaluation gate parameters.
        model_name, namespace, push_mode, canary_traffic_percent, promote, prometheus_url, prometheus_selector:
            push parameters ("" skips a check).
    Returns:
        The columns ingest drops: ``exclude_columns`` plus columns null in every row.
    """
    from kfpc.components.preflight import core

    problems = core.check_parameters(
        task=task, push_mode=push_mode or None, model_name=model_name or None, namespace=namespace or None,
        canary_traffic_percent=canary_traffic_percent, promote=promote, prometheus_url=prometheus_url,
        prometheus_selector=prometheus_selector, eval_fraction=eval_fraction, validation_fraction=validation_fraction,
        hidden_units=hidden_units, dropout=dropout, learning_rate=learning_rate, batch_size=batch_size,
        epochs=epochs, patience=patience, min_accuracy=min_accuracy, max_regression=max_regression,
        eval_config_json=eval_config_json,
    )
    result = core.check(
        source_uri, label=label, task=task, key_column=key_column, exclude_columns=exclude_columns,
        numeric_columns=numeric_columns, parameter_problems=problems,
    )
    with open(report.path, "w") as out:
        out.write(core.markdown_report(result, source_uri, label))
    report.metadata.update(result.metadata())
    return result.drop_columns
