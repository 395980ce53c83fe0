"""The training pipelines' parameters, declared once: type, default and description.

``training_pipeline``, ``tuned_training_pipeline`` and ``retraining_pipeline`` take most of the same
parameters (split, training, gates, push). KFP reads a pipeline's inputs from its function's signature and
their descriptions from its docstring, so instead of writing the same signature three times each pipeline is
built by :func:`pipeline_function` from the names it takes: the signature and the ``Args:`` section are made
from :data:`SHARED` (plus the pipeline's own parameters and wording), and the body gets the bound arguments as
one ``dict`` — the ``p`` the shared steps of :mod:`kfpc.pipelines.steps` take.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from kfpc.pipelines import defaults as D

#: a parameter without a default (required when the pipeline is run)
REQUIRED = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One pipeline parameter. ``doc`` is the description the KFP UI and ``kfpc params`` show."""

    annotation: Any
    default: Any = REQUIRED
    doc: str = ""


#: the parameters the training pipelines share, with their defaults (one source: kfpc.components.defaults)
SHARED: dict[str, Parameter] = {
    "serving_root": Parameter(str, REQUIRED, "where versioned model copies go (``gs://``, ``s3://``, a path); "
                              "required, so a run cannot reach the push step without one (``kfpc run`` uses "
                              "``<run>/serving``)."),
    "source_uri": Parameter(str, "bundled:penguins.csv",
                            "CSV or Parquet table (``gs://`` via /gcs, a local path, or ``bundled:<file>``)."),
    "label": Parameter(str, "species", "the column to predict."),
    "key_column": Parameter(str, "", "column whose hash decides the train/eval split; empty hashes the row."),
    "eval_fraction": Parameter(float, D.EVAL_FRACTION, "share of rows held out for evaluation; training never sees "
                               "them (it early-stops on a validation part of the train split)."),
    "validation_fraction": Parameter(float, D.VALIDATION_FRACTION, "share of the train split carved out, "
                                     "deterministically, for early stopping and model selection."),
    "schema_uri": Parameter(str, "", "a curated ``schema.pbtxt`` to validate against (production runs); empty "
                            "infers one from the train split."),
    "task": Parameter(str, "auto", "``auto`` (from the label), ``binary``, ``multiclass`` or ``regression``."),
    "exclude_columns": Parameter(list[str], [], "columns never used (IDs, leakage); columns null in every row are "
                                 "left out too."),
    "numeric_columns": Parameter(list[str], [], "text columns to read as numbers (values that are not numbers "
                                 "become missing)."),
    "hidden_units": Parameter(list[int], list(D.HIDDEN_UNITS), "sizes of the network's hidden layers."),
    "dropout": Parameter(float, D.DROPOUT, "dropout rate after each hidden layer."),
    "learning_rate": Parameter(float, D.LEARNING_RATE, "Adam's learning rate."),
    "batch_size": Parameter(int, D.BATCH_SIZE, "rows per step; 0 chooses it from the training rows (32 for "
                            "hundreds, 1024 from ~100k)."),
    "epochs": Parameter(int, D.EPOCHS, "most passes over the training rows (early stopping usually ends sooner)."),
    "patience": Parameter(int, D.PATIENCE, "epochs without a better validation loss before training stops (0: "
                          "never early-stop)."),
    "seed": Parameter(int, D.SEED, "seed of the validation carve, the weights' initialization and the shuffling."),
    "fail_on_anomalies": Parameter(bool, True, "stop before training when the eval split breaks the schema or "
                                   "differs from the train split beyond sampling noise (a sample-size-aware "
                                   "shift test per feature); warnings, such as a rare category the train split "
                                   "lacks, never stop the run."),
    "min_accuracy": Parameter(float, D.MIN_ACCURACY, "accuracy lower bound for classification; 0 (default) leaves "
                              "the decision to the skill gate (the model must beat the trivial predictor by its "
                              "bootstrap interval)."),
    "eval_config_json": Parameter(str, "", "thresholds shaped like TFMA's EvalConfig (overrides the default "
                                  "gates)."),
    "model_name": Parameter(str, "penguins", "InferenceService name and folder under ``serving_root``."),
    "namespace": Parameter(str, D.PIPELINE_NAMESPACE, "Kubernetes namespace of the InferenceService."),
    "push_mode": Parameter(str, D.PUSH_MODE, "``dry_run`` (manifest and requests only), ``local`` (smoke-test a "
                           "local server) or ``cluster`` (create/patch the InferenceService)."),
    "canary_traffic_percent": Parameter(int, 0, "1..99 to canary the new model; 0 sends all traffic to it."),
    "promote": Parameter(bool, False, "after a canary that stayed healthy for the bake period, move it to 100%."),
    "prometheus_url": Parameter(str, "", "the Prometheus query API the canary's error rate and p99 latency are "
                                "read from during the bake; needed to promote in cluster mode."),
    "prometheus_selector": Parameter(str, "", "label matchers selecting the canary's series in Prometheus."),
}

#: split and read options, in signature order
SPLIT = ("key_column", "eval_fraction", "validation_fraction")
COLUMNS = ("exclude_columns", "numeric_columns")
#: what the training step takes from the pipeline
TRAINING = ("hidden_units", "dropout", "learning_rate", "batch_size", "epochs", "patience", "seed")
#: the push step's options after the gates
PUSH = ("namespace", "push_mode", "canary_traffic_percent", "promote", "prometheus_url", "prometheus_selector")
#: training_pipeline's parameters, in order; tuned_training_pipeline adds its own to the same list
TRAINING_PIPELINE = ("serving_root", "source_uri", "label", *SPLIT, "schema_uri", "task", *COLUMNS, *TRAINING,
                     "fail_on_anomalies", "min_accuracy", "eval_config_json", "model_name", *PUSH)


def select(names: Iterable[str], own: dict[str, Parameter] | None = None) -> dict[str, Parameter]:
    """The parameters ``names`` in that order: a pipeline's ``own`` ones (its own parameters, or a shared one
    with another default or wording), else the shared ones."""
    own = own or {}
    unknown = [n for n in names if n not in own and n not in SHARED]
    if unknown:
        raise KeyError(f"pipeline parameters declared nowhere: {unknown}")
    return {name: own.get(name) or SHARED[name] for name in names}


def pipeline_function(name: str, summary: str, parameters: dict[str, Parameter],
                      body: Callable[[dict[str, Any]], Any]) -> Callable:
    """A function KFP's ``dsl.pipeline`` takes: signature and docstring from ``parameters``, calling
    ``body(p)`` with every parameter by name (defaults applied).

    Args:
        name: the function's name (KFP names the pipeline from ``dsl.pipeline(name=...)``).
        summary: the docstring's first paragraph.
        parameters: name -> Parameter, in signature order (required ones first).
        body: defines the pipeline's tasks from ``p``.
    """
    signature = inspect.Signature([
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=prm.default, annotation=prm.annotation)
        for n, prm in parameters.items()])

    def pipeline(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return body(dict(bound.arguments))

    # one line each: the description KFP parses from it is then the text itself, with no line breaks
    documented = [f"    {n}: " + " ".join(prm.doc.split()) for n, prm in parameters.items() if prm.doc]
    pipeline.__signature__ = signature
    pipeline.__name__ = pipeline.__qualname__ = name
    pipeline.__doc__ = summary + "\n\nArgs:\n" + "\n".join(documented) + "\n"
    return pipeline
