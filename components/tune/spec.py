"""The one search-space spec every tuning backend (local Optuna, Katib, Vertex AI) is built from.

A spec is YAML or JSON::

    objective: {metric: validation_accuracy, direction: maximize}   # default: validation_loss, minimize
    max_trials: 20
    parallel_trials: 2
    max_failed_trials: 3
    algorithm: tpe             # tpe (Bayesian) | random | grid
    seed: 0
    parameters:
      learning_rate: {type: float, min: 0.0001, max: 0.1, log: true}
      dropout: {type: float, min: 0.0, max: 0.5}
      batch_size: {type: choice, values: [32, 64, 128]}
      hidden_units: {type: choice, values: [[64, 32], [128, 64], [256, 128, 64]]}
      epochs: {type: int, min: 20, max: 100}
      model_family: {type: choice, values: [dnn, gbdt]}
    fixed: {patience: 10}      # training parameters every trial (and the final training) uses

Only plain Python here: the Katib and Vertex builders run in the deploy image, without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FLOAT, INT, CHOICE = "float", "int", "choice"
TYPES = (FLOAT, INT, CHOICE)
MINIMIZE, MAXIMIZE = "minimize", "maximize"
ALGORITHMS = ("tpe", "random", "grid")
#: model families the training component offers (``model_family``); "dnn" is today's Keras model
MODEL_FAMILIES = ("dnn", "gbdt", "auto")
#: the validation metrics train reports (``metrics["validation"]``) plus ``loss`` (log_loss or mse by task)
METRICS = ("loss", "log_loss", "accuracy", "auc", "mse", "rmse", "mae", "r2")
MAXIMIZED = ("accuracy", "auc", "r2")
DEFAULT_METRIC = "validation_loss"

#: training parameters with a known type and range: name -> (kind, lower, upper, lower inclusive, upper inclusive)
KNOWN: dict[str, tuple[str, float, float, bool, bool]] = {
    "learning_rate": (FLOAT, 0.0, math.inf, False, False),
    "dropout": (FLOAT, 0.0, 1.0, True, False),
    "batch_size": (INT, 1, math.inf, True, False),
    "epochs": (INT, 1, math.inf, True, False),
    "patience": (INT, 0, math.inf, True, False),
    "max_vocabulary": (INT, 1, math.inf, True, False),
    "one_hot_max": (INT, 0, math.inf, True, False),
}
#: list-valued or string-valued parameters a search can only choose among
CHOICE_ONLY = ("hidden_units", "model_family")
#: train arguments a search must not touch: data, placement, bookkeeping, and what decides the scoring rows
NOT_TUNABLE = {
    "dataset_dir": "the data is the pipeline's input",
    "model_dir": "each trial writes its own model",
    "label": "the label is the pipeline's input",
    "statistics_dir": "an input artifact", "schema_path": "an input artifact",
    "task": "decided by the label, not a hyperparameter",
    "validation_fraction": "it decides the validation rows every trial is scored on; trials must share them",
    "seed": "it draws the validation rows every trial is scored on; set the spec's seed for the search instead",
    "checkpoint_dir": "placement", "tensorboard_dir": "placement", "strategy": "placement",
    "mixed_precision": "placement", "devices": "placement", "statistics_uri": "bookkeeping",
    "verbose": "logging", "features": "an input of the pipeline", "exclude": "an input of the pipeline",
    "categorical_features": "an input of the pipeline", "shuffle_buffer": "memory, not a hyperparameter",
}
TOP_LEVEL = ("objective", "max_trials", "parallel_trials", "max_failed_trials", "algorithm", "seed", "parameters",
             "fixed", "include_baseline")


class SpecError(ValueError):
    """The search space is invalid; the message names the field and the value."""


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One searched parameter.

    Attributes:
        name: the training parameter.
        type: ``float`` | ``int`` | ``choice``.
        min, max: bounds of ``float`` / ``int`` (inclusive).
        log: sample on a log scale (``float`` / ``int``; needs ``min > 0``).
        values: the options of ``choice`` (numbers, strings or lists of ints).
    """

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    log: bool = False
    values: tuple = ()

    def encode(self, value) -> str:
        """A value as the text Katib / Vertex pass on a command line (lists as ``64,32``)."""
        if isinstance(value, (list, tuple)):
            return ",".join(str(int(v)) for v in value)
        return str(value)

    def decode(self, text: str):
        """The inverse of :meth:`encode` (a command-line value back to its training value)."""
        if self.type == FLOAT:
            return float(text)
        if self.type == INT:
            return int(float(text))
        for value in self.values:
            if self.encode(value) == str(text).strip():
                return list(value) if isinstance(value, (list, tuple)) else value
        for value in self.values:  # Vertex AI returns discrete values as floats: 32.0 for 32
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    if float(text) == value:
                        return value
                except ValueError:
                    pass
        raise SpecError(f"parameters.{self.name}: {text!r} is none of the choices {list(self.values)}")


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """A validated search space (see the module docstring for the file format)."""

    parameters: tuple[Parameter, ...]
    metric: str = DEFAULT_METRIC
    direction: str = MINIMIZE
    max_trials: int = 10
    parallel_trials: int = 1
    max_failed_trials: int = 3
    algorithm: str = "tpe"
    seed: int = 0
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    include_baseline: bool = True

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)

    def to_dict(self) -> dict:
        """The spec as plain data (round-trips through :func:`parse_spec`)."""
        parameters = {}
        for p in self.parameters:
            if p.type == CHOICE:
                parameters[p.name] = {"type": CHOICE, "values": [list(v) if isinstance(v, tuple) else v for v in p.values]}
            else:
                parameters[p.name] = {"type": p.type, "min": p.min, "max": p.max, "log": p.log}
        return {
            "objective": {"metric": self.metric, "direction": self.direction}, "max_trials": self.max_trials,
            "parallel_trials": self.parallel_trials, "max_failed_trials": self.max_failed_trials,
            "algorithm": self.algorithm, "seed": self.seed, "parameters": parameters, "fixed": dict(self.fixed),
            "include_baseline": self.include_baseline,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())  # parameter order kept: trials name them in this order


#: the search a pipeline runs when given none: what usually matters for a small tabular DNN
DEFAULT_SPEC_YAML = """\
objective: {metric: validation_loss, direction: minimize}
max_trials: 12
parallel_trials: 2
max_failed_trials: 3
algorithm: tpe
seed: 0
parameters:
  learning_rate: {type: float, min: 0.0003, max: 0.03, log: true}
  dropout: {type: float, min: 0.0, max: 0.4}
  hidden_units: {type: choice, values: [[32], [64, 32], [128, 64], [256, 128, 64]]}
  batch_size: {type: choice, values: [0, 32, 128, 512]}
"""


def train_parameter_names() -> set[str] | None:
    """Keyword parameters of the train core (so parameters training gains, such as ``model_family``, are
    accepted without a change here); None where the train core cannot be imported (the deploy image)."""
    try:
        from kfpc.components.train import core
    except ImportError:
        return None
    return {name for name, p in inspect.signature(core.train).parameters.items() if p.kind == p.KEYWORD_ONLY}


def _number(field: str, value, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{field} must be a finite number, got {value!r}")
    if integer and value != int(value):
        raise SpecError(f"{field} must be an integer, got {value!r}")
    return value


def _check_value(name: str, field: str, value) -> None:
    """A single value of a known parameter against the range training accepts."""
    if name == "hidden_units":
        if (not isinstance(value, (list, tuple)) or not value
                or any(isinstance(u, bool) or not isinstance(u, int) or u <= 0 for u in value)):
            raise SpecError(f"{field}: hidden_units options are non-empty lists of positive integers, got {value!r}")
        return
    if name == "model_family":
        if value not in MODEL_FAMILIES:
            raise SpecError(f"{field}: model_family must be one of {', '.join(MODEL_FAMILIES)}, got {value!r}")
        return
    if name not in KNOWN:
        return
    kind, lower, upper, lower_in, upper_in = KNOWN[name]
    _number(field, value, integer=kind == INT)
    if name == "batch_size" and value == 0:
        return  # 0: training chooses the size from the rows
    if value < lower or (value == lower and not lower_in) or value > upper or (value == upper and not upper_in):
        low = "[" if lower_in else "("
        high = "]" if upper_in else ")"
        raise SpecError(f"{field}: {name} must be in {low}{lower}, {upper}{high}, got {value!r}")


def _parameter(name: str, raw, accepted: set[str] | None) -> Parameter:
    field = f"parameters.{name}"
    if name in NOT_TUNABLE:
        raise SpecError(f"{field}: {name} cannot be searched ({NOT_TUNABLE[name]})")
    if name not in KNOWN and name not in CHOICE_ONLY and (accepted is None or name not in accepted):
        known = sorted(set(KNOWN) | set(CHOICE_ONLY) | ((accepted or set()) - set(NOT_TUNABLE)))
        raise SpecError(f"{field}: {name!r} is not a training parameter; known: {', '.join(known)}")
    if not isinstance(raw, Mapping):
        raise SpecError(f"{field} must be a mapping with a 'type' ({', '.join(TYPES)}), got {raw!r}")
    unknown = set(raw) - {"type", "min", "max", "log", "values"}
    if unknown:
        raise SpecError(f"{field}: unknown field(s) {', '.join(sorted(unknown))}; known: type, min, max, log, values")
    kind = raw.get("type")
    if kind not in TYPES:
        raise SpecError(f"{field}.type must be one of {', '.join(TYPES)}, got {kind!r}")
    if name in CHOICE_ONLY and kind != CHOICE:
        raise SpecError(f"{field}.type: {name} can only be searched as 'choice', got {kind!r}")
    if kind == CHOICE:
        if set(raw) - {"type", "values"}:
            raise SpecError(f"{field}: a choice takes only 'values', got {', '.join(sorted(set(raw) - {'type', 'values'}))}")
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise SpecError(f"{field}.values must be a non-empty list, got {values!r}")
        for index, value in enumerate(values):
            _check_value(name, f"{field}.values[{index}]", value)
        frozen = tuple(tuple(v) if isinstance(v, list) else v for v in values)
        if len(set(frozen)) != len(frozen):
            raise SpecError(f"{field}.values has duplicates: {values!r}")
        return Parameter(name, CHOICE, values=frozen)
    if "values" in raw:
        raise SpecError(f"{field}: 'values' belongs to type 'choice', not {kind!r}")
    for bound in ("min", "max"):
        if bound not in raw:
            raise SpecError(f"{field}.{bound} is required for type {kind!r}")
        _number(f"{field}.{bound}", raw[bound], integer=kind == INT)
    if name in KNOWN and KNOWN[name][0] == INT and kind == FLOAT:
        raise SpecError(f"{field}.type: {name} is an integer parameter; use type 'int' or 'choice', got 'float'")
    low, high = raw["min"], raw["max"]
    if not low < high:
        raise SpecError(f"{field}: min must be below max, got min={low!r} max={high!r}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(f"{field}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SpecError(f"{field}: a log scale needs min > 0, got min={low!r}")
    _check_value(name, f"{field}.min", low)
    _check_value(name, f"{field}.max", high)
    return Parameter(name, kind, min=float(low) if kind == FLOAT else int(low),
                     max=float(high) if kind == FLOAT else int(high), log=log)


def _count(field: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{field} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_spec(source: str | Mapping | Path, origin: str = "search space") -> SearchSpec:
    """Parse and validate a search space.

    Args:
        source: a mapping, YAML/JSON text, or a path to a ``.yaml`` / ``.yml`` / ``.json`` file.
        origin: how errors name the spec (a file name is used when ``source`` is a path).
    Returns:
        The validated SearchSpec.
    Raises:
        SpecError: naming the field and the value.
    """
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.strip().endswith((".yaml", ".yml", ".json"))):
        path = Path(source)
        if not path.exists():
            raise SpecError(f"{path}: no such search-space file")
        origin, source = str(path), path.read_text()
    if isinstance(source, str):
        import yaml

        try:
            data = yaml.safe_load(source)  # JSON is YAML
        except yaml.YAMLError as err:
            raise SpecError(f"{origin}: not YAML or JSON: {err}") from None
    else:
        data = source
    try:
        return _parse(data)
    except SpecError as err:
        raise SpecError(f"{origin}: {err}") from None


def _parse(data) -> SearchSpec:
    if not isinstance(data, Mapping):
        raise SpecError(f"the spec must be a mapping with 'parameters', got {type(data).__name__}")
    unknown = set(data) - set(TOP_LEVEL)
    if unknown:
        raise SpecError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(TOP_LEVEL)}")
    objective = data.get("objective") or {}
    if not isinstance(objective, Mapping) or set(objective) - {"metric", "direction"}:
        raise SpecError(f"objective must be a mapping of metric and direction, got {objective!r}")
    metric = objective.get("metric", DEFAULT_METRIC)
    name = metric[len("validation_"):] if isinstance(metric, str) and metric.startswith("validation_") else None
    if name not in METRICS:
        hint = ""
        if isinstance(metric, str) and metric.startswith(("eval_", "train_")):
            hint = " (the search is scored on the validation part of Split-train; eval is kept for the final model)"
        raise SpecError(f"objective.metric must be one of {', '.join('validation_' + m for m in METRICS)}, "
                        f"got {metric!r}{hint}")
    natural = MAXIMIZE if name in MAXIMIZED else MINIMIZE
    direction = objective.get("direction", natural)
    if direction not in (MINIMIZE, MAXIMIZE):
        raise SpecError(f"objective.direction must be minimize or maximize, got {direction!r}")
    if direction != natural:
        raise SpecError(f"objective.direction: {metric} is better when {'higher' if natural == MAXIMIZE else 'lower'}; "
                        f"direction must be {natural}, got {direction!r}")
    max_trials = _count("max_trials", data.get("max_trials", 10), 1)
    parallel = _count("parallel_trials", data.get("parallel_trials", 1), 1)
    if parallel > max_trials:
        raise SpecError(f"parallel_trials ({parallel}) cannot exceed max_trials ({max_trials})")
    failed = _count("max_failed_trials", data.get("max_failed_trials", 3), 0)
    algorithm = data.get("algorithm", "tpe")
    if algorithm not in ALGORITHMS:
        raise SpecError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    seed = _count("seed", data.get("seed", 0), 0)
    include_baseline = data.get("include_baseline", True)
    if not isinstance(include_baseline, bool):
        raise SpecError(f"include_baseline must be true or false, got {include_baseline!r}")
    raw_parameters = data.get("parameters")
    if not isinstance(raw_parameters, Mapping) or not raw_parameters:
        raise SpecError(f"parameters must be a non-empty mapping of training parameter -> range, got {raw_parameters!r}")
    accepted = train_parameter_names()
    parameters = tuple(_parameter(str(n), raw, accepted) for n, raw in raw_parameters.items())
    if algorithm == "grid" and any(p.type == FLOAT for p in parameters):
        raise SpecError("algorithm grid needs int or choice parameters only; "
                        f"{', '.join(p.name for p in parameters if p.type == FLOAT)} are float ranges")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        raise SpecError(f"fixed must be a mapping of training parameter -> value, got {fixed!r}")
    for key, value in fixed.items():
        if key in raw_parameters:
            raise SpecError(f"fixed.{key}: {key} is also searched in parameters; keep one")
        if key in NOT_TUNABLE and key not in ("shuffle_buffer", "categorical_features", "exclude"):
            raise SpecError(f"fixed.{key}: set {key} on the pipeline, not in the search space ({NOT_TUNABLE[key]})")
        if key not in KNOWN and key not in CHOICE_ONLY and (accepted is None or key not in accepted) \
                and key not in NOT_TUNABLE:
            raise SpecError(f"fixed.{key}: {key!r} is not a training parameter")
        _check_value(key, f"fixed.{key}", value)
    return SearchSpec(parameters=parameters, metric=metric, direction=direction, max_trials=max_trials,
                      parallel_trials=parallel, max_failed_trials=failed, algorithm=algorithm, seed=seed,
                      fixed=dict(fixed), include_baseline=include_baseline)


def objective_value(spec: SearchSpec, validation_metrics: Mapping[str, float]) -> float:
    """The objective of one trial from train's validation metrics (``loss`` is log_loss, or mse for regression).

    Raises:
        SpecError: the metric does not exist for this task (e.g. ``validation_auc`` on a multiclass label).
    """
    name = spec.metric[len("validation_"):]
    if name == "loss":
        name = "log_loss" if "log_loss" in validation_metrics else "mse"
    if name not in validation_metrics:
        raise SpecError(f"objective.metric {spec.metric!r} is not reported for this task; the validation metrics "
                        f"are {', '.join('validation_' + k for k in validation_metrics if k != 'rows')}")
    return float(validation_metrics[name])


def reported_metrics(validation_metrics: Mapping[str, float]) -> dict[str, float]:
    """The ``validation_*`` values a trial reports (``validation_loss`` included), for every backend."""
    out = {f"validation_{k}": float(v) for k, v in validation_metrics.items() if k != "rows"}
    out["validation_loss"] = float(validation_metrics.get("log_loss", validation_metrics.get("mse", math.nan)))
    return out
