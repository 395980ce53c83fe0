"""The evaluation config (shaped like TFMA's EvalConfig) and the threshold verdicts that decide blessing.

JSON shape (every key optional)::

    {
      "slicing_specs": [{}, {"feature_keys": ["island"]},
                        {"feature_keys": ["body_mass_g"], "num_buckets": 4},
                        {"feature_keys": ["island", "sex"]}],
      "min_slice_size": 30,
      "max_slices_per_spec": 100,
      "thresholds": [
        {"metric": "auto", "skill_threshold": {"margin": 0.0},
         "change_threshold": {"absolute": -0.01, "interval_end": "optimistic"},
         "use_confidence_interval": true},
        {"metric": "accuracy", "value_threshold": {"lower_bound": 0.9}},
        {"metric": "accuracy",
         "change_threshold": {"direction": "higher_is_better", "absolute": -0.01, "relative": -0.02,
                              "use_confidence_interval": false}},
        {"metric": "recall/Gentoo", "slice": {"island": "Biscoe"}, "value_threshold": {"lower_bound": 0.8}},
        {"metric": "accuracy", "slicing_spec": {"feature_keys": ["island"]},
         "value_threshold": {"lower_bound": 0.7}}
      ],
      "bootstrap": {"replicates": 300, "confidence": 0.95, "reservoir_size": 50000, "seed": 0}
    }

Semantics follow TFMA: a value threshold passes when ``lower_bound <= value <= upper_bound``. A change
threshold compares candidate minus baseline (``difference``) and ``difference / |baseline|``
(``relative``): with ``higher_is_better`` it passes when ``difference >= absolute`` and
``relative >= relative``; with ``lower_is_better`` when ``difference <= absolute`` and
``relative <= relative``. So "accuracy may drop by at most 0.01" is ``absolute: -0.01``, and "RMSE may
grow by at most 5%" is ``direction: lower_is_better, relative: 0.05``.

A skill threshold (not in TFMA) compares the metric with the same metric of the *trivial predictor* on
the same rows: constant probabilities equal to the class shares (classification) or the label mean
(regression). ``roc_auc`` 0.5, ``pr_auc/<class>`` the class's share, ``accuracy`` the majority share,
``log_loss`` the entropy of the shares, ``r2`` 0, ``rmse``/``mse`` the label's spread. It passes when the
candidate beats it by more than ``margin`` (strictly: a tie fails).

``use_confidence_interval`` compares an end of a bootstrap interval instead of the point estimate:

* value threshold: the conservative end of the metric's interval;
* skill threshold: the conservative end of the paired interval of (metric − trivial value), i.e. the
  whole interval must lie on the skilled side;
* change threshold: the paired interval of the difference, at ``interval_end``: ``conservative`` (the
  default: the candidate must be *shown* no worse than allowed) or ``optimistic`` (fail only when even
  the optimistic end is worse than allowed: the candidate is *shown* worse, so an equal model passes).

The metric ``auto`` is the task's threshold-free headline metric, chosen from the eval labels: ``roc_auc``
for balanced binary and for multi-class (one-vs-rest macro), ``pr_auc/<minority class>`` for binary
labels whose minority class is under ``IMBALANCE_CUTOFF`` (20%) of the eval rows, ``r2`` for regression.
The default config judges skill on ``roc_auc`` (see :func:`default_config`) and the change vs a baseline
on ``auto``.

A threshold applies to the overall slice, to one ``slice`` (``{feature: value}``; numeric bucket values
are written as in the report, e.g. ``"[3.5, 4.2)"``), or to every slice of a ``slicing_spec``.
Blessed = every applicable threshold passes. Documented non-failing cases: change thresholds without a
baseline (first run) and slices other than the overall one smaller than ``min_slice_size`` are reported as
``skipped``. A metric
that is undefined (NaN, e.g. ROC AUC of a slice with one class) fails its threshold.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from kfpc.components import defaults as D
from kfpc.components.evaluate import metrics as metric_lib


class EvalConfigError(ValueError):
    """The evaluation config is malformed; the message names the field and the value."""


@dataclasses.dataclass(frozen=True)
class SlicingSpec:
    """Slice by the values of ``feature_keys`` (crossed when two or more); empty = overall."""

    feature_keys: tuple[str, ...] = ()
    num_buckets: int = 4  # quantile buckets for numeric features

    def name(self) -> str:
        """``overall`` or the feature names joined by `` x ``."""
        return " x ".join(self.feature_keys) if self.feature_keys else "overall"


@dataclasses.dataclass(frozen=True)
class ValueThreshold:
    """Absolute bounds on a metric (inclusive)."""

    lower_bound: float | None = None
    upper_bound: float | None = None


@dataclasses.dataclass(frozen=True)
class ChangeThreshold:
    """Bounds on the change vs the baseline (see the module docstring for the semantics)."""

    direction: str = "higher_is_better"
    absolute: float | None = None
    relative: float | None = None
    interval_end: str = "conservative"  # which end of the difference interval use_confidence_interval reads


@dataclasses.dataclass(frozen=True)
class SkillThreshold:
    """The metric must beat the trivial predictor's value on the same rows by more than ``margin``."""

    margin: float = 0.0


@dataclasses.dataclass(frozen=True)
class Threshold:
    """One metric's value and/or change threshold, on one slice, every slice of a spec, or overall."""

    metric: str
    value_threshold: ValueThreshold | None = None
    change_threshold: ChangeThreshold | None = None
    skill_threshold: SkillThreshold | None = None
    slice: tuple[tuple[str, str], ...] | None = None
    slicing_spec: SlicingSpec | None = None
    use_confidence_interval: bool = False


@dataclasses.dataclass(frozen=True)
class BootstrapSpec:
    """Bootstrap interval settings."""

    replicates: int = 300
    confidence: float = 0.95
    reservoir_size: int = 50_000
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to slice, which thresholds decide blessing, and how intervals are computed."""

    slicing_specs: tuple[SlicingSpec, ...] = (SlicingSpec(),)
    thresholds: tuple[Threshold, ...] = ()
    min_slice_size: int = 30
    max_slices_per_spec: int = 100
    bootstrap: BootstrapSpec = BootstrapSpec()

    @classmethod
    def parse(cls, config: EvalConfig | dict | str | None) -> EvalConfig:
        """Build a config from an EvalConfig, a dict or a JSON string (``None`` or ``""``: defaults).

        Raises:
            EvalConfigError: unknown keys, wrong types or impossible values, naming the field.
        """
        if isinstance(config, EvalConfig):
            return config
        if config is None or (isinstance(config, str) and not config.strip()):
            return cls()
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as err:
                raise EvalConfigError(f"eval config is not valid JSON: {err}") from err
        if not isinstance(config, dict):
            raise EvalConfigError(f"eval config must be a JSON object, got {type(config).__name__}")
        _only(config, "eval config", {"slicing_specs", "thresholds", "min_slice_size", "max_slices_per_spec",
                                      "bootstrap"})
        specs = tuple(_slicing_spec(s, f"slicing_specs[{i}]") for i, s in enumerate(config.get("slicing_specs", [])))
        if SlicingSpec() not in specs:
            specs = (SlicingSpec(),) + specs  # the overall slice is always computed
        thresholds = tuple(_threshold(t, f"thresholds[{i}]") for i, t in enumerate(config.get("thresholds", [])))
        for threshold in thresholds:
            if threshold.slicing_spec is not None and threshold.slicing_spec not in specs:
                specs += (threshold.slicing_spec,)
            if threshold.slice is not None:
                spec = SlicingSpec(tuple(key for key, _ in threshold.slice))
                if not any(s.feature_keys == spec.feature_keys for s in specs):
                    specs += (spec,)
        min_slice_size = _number(config.get("min_slice_size", 30), "min_slice_size", int, minimum=1)
        max_slices = _number(config.get("max_slices_per_spec", 100), "max_slices_per_spec", int, minimum=1)
        boot = config.get("bootstrap", {})
        if not isinstance(boot, dict):
            raise EvalConfigError(f"bootstrap must be an object, got {boot!r}")
        _only(boot, "bootstrap", {"replicates", "confidence", "reservoir_size", "seed"})
        confidence = _number(boot.get("confidence", 0.95), "bootstrap.confidence", float)
        if not 0 < confidence < 1:
            raise EvalConfigError(f"bootstrap.confidence must be in (0, 1), got {confidence}")
        bootstrap = BootstrapSpec(
            replicates=_number(boot.get("replicates", 300), "bootstrap.replicates", int, minimum=0),
            confidence=confidence,
            reservoir_size=_number(boot.get("reservoir_size", 50_000), "bootstrap.reservoir_size", int, minimum=2),
            seed=_number(boot.get("seed", 0), "bootstrap.seed", int, minimum=0),
        )
        return cls(specs, thresholds, min_slice_size, max_slices, bootstrap)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-able data (the shape :meth:`parse` reads)."""
        def threshold(t: Threshold) -> dict:
            out: dict[str, Any] = {"metric": t.metric}
            if t.value_threshold:
                out["value_threshold"] = {k: v for k, v in dataclasses.asdict(t.value_threshold).items() if v is not None}
            if t.change_threshold:
                change = {k: v for k, v in dataclasses.asdict(t.change_threshold).items() if v is not None}
                out["change_threshold"] = change
            if t.skill_threshold:
                out["skill_threshold"] = dataclasses.asdict(t.skill_threshold)
            if t.use_confidence_interval:
                out["use_confidence_interval"] = True
            if t.slice:
                out["slice"] = dict(t.slice)
            if t.slicing_spec:
                out["slicing_spec"] = {"feature_keys": list(t.slicing_spec.feature_keys),
                                       "num_buckets": t.slicing_spec.num_buckets}
            return out

        return {
            "slicing_specs": [{"feature_keys": list(s.feature_keys), "num_buckets": s.num_buckets}
                              for s in self.slicing_specs],
            "thresholds": [threshold(t) for t in self.thresholds],
            "min_slice_size": self.min_slice_size,
            "max_slices_per_spec": self.max_slices_per_spec,
            "bootstrap": dataclasses.asdict(self.bootstrap),
        }


#: binary labels whose minority class has a smaller share of the eval rows are judged on its PR AUC
IMBALANCE_CUTOFF = 0.2
AUTO = "auto"


def default_config(task: str, *, min_accuracy: float = D.MIN_ACCURACY,
                   max_regression: float = D.MAX_REGRESSION) -> EvalConfig:
    """The pipeline's default thresholds: skill, and no clear regression vs the baseline.

    Classification: ROC AUC (one-vs-rest macro for multi-class) must beat the class prior (0.5) by its
    bootstrap interval; with a baseline, the ``auto`` metric (ROC AUC, or PR AUC of the minority class for
    imbalanced binary) is rejected only when the paired interval of the difference shows it worse by more
    than ``max_regression`` (absolute).
    ``accuracy >= min_accuracy`` is added when ``min_accuracy > 0``. Regression: ``r2 > 0`` by its
    interval (beats the mean predictor); with a baseline, rejected only when the paired interval shows
    RMSE higher by more than ``max_regression`` (relative, 0.01 = 1%).

    A ``min_accuracy`` above 1 is accepted and fails every model (a way to evaluate without pushing); a
    negative ``max_regression`` asks for an improvement shown by the interval's optimistic end.

    Raises:
        EvalConfigError: a parameter that is not a finite number.
    """
    min_accuracy = _number(min_accuracy, "min_accuracy", float)
    max_regression = _number(max_regression, "max_regression", float)
    if task == "regression":
        thresholds = (
            Threshold("r2", skill_threshold=SkillThreshold(), use_confidence_interval=True),
            Threshold("rmse", change_threshold=ChangeThreshold("lower_is_better", relative=max_regression,
                                                               interval_end="optimistic"),
                      use_confidence_interval=True),
        )
    else:
        # Skill is judged on ROC AUC at every prevalence: its no-skill value (0.5) holds for a constant score and
        # for a random ranking alike. PR AUC's does not: the constant prior scores the prevalence, but a random
        # ranking scores more on small samples (~0.15 vs 0.125 at 4 positives in 32 rows), so a model without
        # skill would "beat the prior". The change vs the baseline is judged on `auto` (PR AUC of the minority
        # class when imbalanced), where both models meet the same rows.
        thresholds = (Threshold("roc_auc", skill_threshold=SkillThreshold(), use_confidence_interval=True),
                      Threshold(AUTO, change_threshold=ChangeThreshold("higher_is_better", absolute=-max_regression,
                                                                       interval_end="optimistic"),
                                use_confidence_interval=True))
        if min_accuracy > 0:
            thresholds += (Threshold("accuracy", value_threshold=ValueThreshold(lower_bound=min_accuracy)),)
    return EvalConfig(thresholds=thresholds)


def resolve_auto(task: str, classes: list[str], class_counts: list[int] | None) -> tuple[str, str]:
    """The metric ``auto`` stands for on these eval labels, and why.

    Args:
        task: ``binary`` | ``multiclass`` | ``regression``.
        classes: class names (classification).
        class_counts: eval rows per class (classification).
    Returns:
        ``(metric, explanation)``.
    """
    if task == "regression":
        return "r2", "regression: R² (beats the mean predictor when > 0)"
    if task != "binary":
        return "roc_auc", "multi-class: one-vs-rest macro ROC AUC"
    counts = [int(c) for c in class_counts]
    total = sum(counts)
    minority = min(range(len(counts)), key=lambda i: (counts[i], i))
    share = counts[minority] / total if total else 0.0
    if share < IMBALANCE_CUTOFF:
        return (f"pr_auc/{classes[minority]}",
                f"imbalanced binary: minority class {classes[minority]!r} is {share:.1%} of the eval rows "
                f"(< {IMBALANCE_CUTOFF:.0%}): its PR AUC (average precision)")
    return "roc_auc", (f"balanced binary: minority class {classes[minority]!r} is {share:.1%} of the eval rows "
                       f"(>= {IMBALANCE_CUTOFF:.0%}): ROC AUC")


def _only(data: dict, where: str, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise EvalConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _number(value: Any, where: str, kind: type, minimum: float | None = None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise EvalConfigError(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    value = kind(value)
    if minimum is not None and value < minimum:
        raise EvalConfigError(f"{where} must be >= {minimum}, got {value}")
    if kind is float and not math.isfinite(value):
        raise EvalConfigError(f"{where} must be finite, got {value}")
    return value


def _slicing_spec(data: Any, where: str) -> SlicingSpec:
    if not isinstance(data, dict):
        raise EvalConfigError(f"{where} must be an object like {{'feature_keys': [...]}}, got {data!r}")
    _only(data, where, {"feature_keys", "num_buckets"})
    keys = data.get("feature_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise EvalConfigError(f"{where}.feature_keys must be a list of column names, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise EvalConfigError(f"{where}.feature_keys repeats a column: {keys}")
    buckets = _number(data.get("num_buckets", 4), f"{where}.num_buckets", int, minimum=2)
    return SlicingSpec(tuple(keys), buckets)


def _optional_float(data: dict, key: str, where: str) -> float | None:
    return None if data.get(key) is None else _number(data[key], f"{where}.{key}", float)


def _threshold(data: Any, where: str) -> Threshold:
    if not isinstance(data, dict):
        raise EvalConfigError(f"{where} must be an object, got {data!r}")
    _only(data, where, {"metric", "value_threshold", "change_threshold", "skill_threshold", "slice",
                        "slicing_spec", "use_confidence_interval"})
    metric = data.get("metric")
    if not isinstance(metric, str) or not metric:
        raise EvalConfigError(f"{where}.metric must be a metric name, got {metric!r}")
    value = change = skill = None
    if data.get("value_threshold") is not None:
        v = data["value_threshold"]
        if not isinstance(v, dict):
            raise EvalConfigError(f"{where}.value_threshold must be an object, got {v!r}")
        _only(v, f"{where}.value_threshold", {"lower_bound", "upper_bound"})
        value = ValueThreshold(_optional_float(v, "lower_bound", f"{where}.value_threshold"),
                               _optional_float(v, "upper_bound", f"{where}.value_threshold"))
        if value.lower_bound is None and value.upper_bound is None:
            raise EvalConfigError(f"{where}.value_threshold needs lower_bound and/or upper_bound")
    if data.get("change_threshold") is not None:
        c = data["change_threshold"]
        if not isinstance(c, dict):
            raise EvalConfigError(f"{where}.change_threshold must be an object, got {c!r}")
        _only(c, f"{where}.change_threshold", {"direction", "absolute", "relative", "use_confidence_interval",
                                               "interval_end"})
        default_direction = metric_lib.higher_is_better(metric)
        direction = str(c.get("direction", "higher_is_better" if default_direction in (True, None)
                              else "lower_is_better")).lower()
        if direction not in ("higher_is_better", "lower_is_better"):
            raise EvalConfigError(
                f"{where}.change_threshold.direction must be higher_is_better or lower_is_better, got {direction!r}")
        interval_end = str(c.get("interval_end", "conservative")).lower()
        if interval_end not in ("conservative", "optimistic"):
            raise EvalConfigError(
                f"{where}.change_threshold.interval_end must be conservative or optimistic, got {interval_end!r}")
        change = ChangeThreshold(direction, _optional_float(c, "absolute", f"{where}.change_threshold"),
                                 _optional_float(c, "relative", f"{where}.change_threshold"), interval_end)
        if change.absolute is None and change.relative is None:
            raise EvalConfigError(f"{where}.change_threshold needs absolute and/or relative")
        if c.get("use_confidence_interval"):
            data = {**data, "use_confidence_interval": True}
    if data.get("skill_threshold") is not None:
        s = data["skill_threshold"]
        if not isinstance(s, dict):
            raise EvalConfigError(f"{where}.skill_threshold must be an object like {{'margin': 0.0}}, got {s!r}")
        _only(s, f"{where}.skill_threshold", {"margin"})
        skill = SkillThreshold(_number(s.get("margin", 0.0), f"{where}.skill_threshold.margin", float, minimum=0.0))
    if value is None and change is None and skill is None:
        raise EvalConfigError(f"{where} ({metric}) needs a value_threshold, a change_threshold or a skill_threshold")
    if metric == AUTO and value is not None:
        raise EvalConfigError(f"{where}: metric 'auto' changes with the data; give it a skill or change "
                              "threshold, or name the metric for a value threshold")
    slice_ = None
    if data.get("slice") is not None:
        s = data["slice"]
        if not isinstance(s, dict) or not s or not all(isinstance(k, str) for k in s):
            raise EvalConfigError(f"{where}.slice must be an object {{feature: value}}, got {s!r}")
        slice_ = tuple((k, str(v)) for k, v in s.items())
    spec = _slicing_spec(data["slicing_spec"], f"{where}.slicing_spec") if data.get("slicing_spec") is not None else None
    if slice_ is not None and spec is not None:
        raise EvalConfigError(f"{where}: give slice or slicing_spec, not both")
    return Threshold(metric, value, change, skill, slice_, spec, bool(data.get("use_confidence_interval", False)))


def check_metric_names(config: EvalConfig, known: list[str], task: str | None = None) -> None:
    """Fail early when a threshold names a metric the task does not produce, or a skill threshold names a
    metric without a trivial-predictor value."""
    kind = "regression" if task == "regression" else "classification"
    for i, threshold in enumerate(config.thresholds):
        if threshold.metric != AUTO and threshold.metric not in known:
            raise EvalConfigError(f"thresholds[{i}].metric {threshold.metric!r} is not computed; known: "
                                  f"{[AUTO] + known}")
        if threshold.skill_threshold is not None and task is not None and threshold.metric != AUTO:
            allowed = metric_lib.TRIVIAL_METRICS[kind]
            if threshold.metric.split("/")[0] not in allowed or (
                    "/" in threshold.metric and not threshold.metric.startswith("pr_auc/")):
                raise EvalConfigError(
                    f"thresholds[{i}].skill_threshold: {threshold.metric!r} has no trivial-predictor value; "
                    f"use one of {[AUTO, *allowed] + (['pr_auc/<class>'] if kind == 'classification' else [])}")


#: a skill or change this close to its bound is a tie (bootstrap sums of the same rows differ by rounding)
_TIE = 1e-9


def _conservative(interval: list[float] | None, higher_better: bool) -> float | None:
    if not interval:
        return None
    return interval[0] if higher_better else interval[1]


def _interval_text(interval: list[float] | None) -> str:
    return f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else ""


def value_verdict(threshold: Threshold, value: float, interval: list[float] | None) -> dict[str, Any]:
    """Judge a value threshold: ``{"kind": "value", "compared", "passed", "reason", ...}``."""
    bound = threshold.value_threshold
    compared = value
    note = ""
    if threshold.use_confidence_interval and not interval:
        note = " (no interval for this metric: point estimate used)"
    # A lower bound is checked with the interval's lower end, an upper bound with its upper end.
    reasons = []
    passed = not math.isnan(value)
    if math.isnan(value):
        reasons.append(f"{threshold.metric} is undefined on this slice")
    if bound.lower_bound is not None and passed:
        low = interval[0] if threshold.use_confidence_interval and interval else value
        if low < bound.lower_bound:
            passed = False
            what = "interval lower end" if threshold.use_confidence_interval and interval else "value"
            reasons.append(f"{threshold.metric} {what} {low:.6g} < lower bound {bound.lower_bound:.6g}")
        compared = low
    if bound.upper_bound is not None and passed:
        high = interval[1] if threshold.use_confidence_interval and interval else value
        if high > bound.upper_bound:
            passed = False
            reasons.append(f"{threshold.metric} {high:.6g} > upper bound {bound.upper_bound:.6g}")
            compared = high
    if passed:
        reasons.append(f"{threshold.metric} {compared:.6g} within "
                       f"[{_fmt(bound.lower_bound, '-inf')}, {_fmt(bound.upper_bound, '+inf')}]")
    return {"kind": "value", "lower_bound": bound.lower_bound, "upper_bound": bound.upper_bound,
            "bound": bound.lower_bound if bound.lower_bound is not None else bound.upper_bound,
            "interval": interval, "compared": compared, "passed": passed, "reason": "; ".join(reasons) + note}


def skill_verdict(threshold: Threshold, value: float, trivial: float | None, interval: list[float] | None,
                  skill_interval: list[float] | None, trivial_name: str = "trivial predictor") -> dict[str, Any]:
    """Judge a skill threshold: the metric vs the trivial predictor's on the same rows.

    Args:
        threshold: a threshold with ``skill_threshold``.
        value: the candidate's metric.
        trivial: the trivial predictor's metric on the same rows (``None``/NaN: undefined).
        interval: bootstrap interval of the candidate's metric (reported).
        skill_interval: paired bootstrap interval of ``value - trivial`` (judged with ``use_confidence_interval``).
        trivial_name: what the trivial predictor is, for the reason (e.g. ``class prior``).
    Returns:
        ``{"kind": "skill", "trivial", "bound", "skill", "skill_interval", "compared", "compared_skill",
        "passed", "reason", ...}``; ``compared`` (= trivial + ``compared_skill``) is in the metric's units,
        like ``bound`` (= trivial ± margin).
    """
    margin = threshold.skill_threshold.margin
    higher = metric_lib.higher_is_better(threshold.metric) is not False
    out: dict[str, Any] = {"kind": "skill", "trivial": trivial, "trivial_predictor": trivial_name, "margin": margin,
                           "direction": "higher_is_better" if higher else "lower_is_better",
                           "interval": interval, "skill_interval": skill_interval}
    if trivial is None or math.isnan(trivial) or math.isnan(value):
        return {**out, "bound": None, "skill": None, "passed": False,
                "reason": f"{threshold.metric} or its {trivial_name} value is undefined on this slice "
                          "(a class without rows?): skill cannot be shown"}
    sign = 1.0 if higher else -1.0
    gain = value - trivial
    out.update(bound=trivial + sign * margin, skill=gain)
    compared, basis = gain, "point estimate"
    if threshold.use_confidence_interval:
        end = _conservative(skill_interval, higher)
        if end is not None:
            compared, basis = end, "conservative end of the paired interval of the skill"
        else:
            basis = "point estimate (no interval for this metric)"
    out.update(compared=trivial + compared, compared_skill=compared)
    passed = sign * compared > margin + _TIE
    word = ">" if higher else "<"
    head = (f"{threshold.metric} {value:.4g}{_interval_text(interval)} vs {trivial_name} {trivial:.4g}: "
            f"skill {gain:+.4g}{_interval_text(skill_interval)}, {basis} {compared:+.4g} ")
    if passed:
        return {**out, "passed": True, "reason": head + f"{word} {sign * margin:+.4g}: beats the {trivial_name}"}
    return {**out, "passed": False,
            "reason": head + f"not {word} {sign * margin:+.4g}: does not beat the {trivial_name}"}


def change_verdict(threshold: Threshold, value: float, baseline: float | None,
                   interval: list[float] | None) -> dict[str, Any]:
    """Judge a change threshold against the baseline value (``None``: no baseline, skipped).

    ``compared_change`` is the difference judged (point or interval end); ``compared`` = baseline +
    ``compared_change`` is in the metric's units, like ``bound`` (the baseline's allowed value)."""
    change = threshold.change_threshold
    out: dict[str, Any] = {"kind": "change", "direction": change.direction, "absolute": change.absolute,
                           "relative": change.relative, "interval_end": change.interval_end,
                           "baseline": baseline, "interval": interval}
    if baseline is None:
        return {**out, "passed": None, "skipped": True, "reason": "no baseline model: change thresholds skipped"}
    higher = change.direction == "higher_is_better"
    difference = value - baseline
    out["difference"] = difference
    out["relative_difference"] = difference / abs(baseline) if baseline else (0.0 if difference == 0 else math.inf)
    limits = [baseline + change.absolute] if change.absolute is not None else []
    if change.relative is not None:
        limits.append(baseline + change.relative * abs(baseline))
    out["bound"] = (max(limits) if higher else min(limits)) if limits else None
    if math.isnan(difference):
        return {**out, "passed": False, "reason": f"{threshold.metric} is undefined for the candidate or baseline"}
    compared = difference
    basis = ""
    if threshold.use_confidence_interval:
        optimistic = change.interval_end == "optimistic"
        end = _conservative(interval, not higher if optimistic else higher)
        if end is not None:
            compared = end
            basis = (f" (paired difference {difference:+.4g},{_interval_text(interval)}; its "
                     f"{change.interval_end} end)")
        else:
            basis = " (no interval for this metric: point estimate used)"
    out.update(compared=baseline + compared, compared_change=compared)
    relative = compared / abs(baseline) if baseline else (0.0 if compared == 0 else math.copysign(math.inf, compared))
    failures = []
    word = ">=" if higher else "<="
    slack = _TIE if higher else -_TIE
    if change.absolute is not None and not (compared + slack >= change.absolute if higher
                                            else compared + slack <= change.absolute):
        failures.append(f"change {compared:+.6g} not {word} {change.absolute:+.6g}")
    if change.relative is not None and not (relative >= change.relative if higher else relative <= change.relative):
        failures.append(f"relative change {relative:+.4%} not {word} {change.relative:+.4%}")
    head = f"{threshold.metric} {value:.6g} vs baseline {baseline:.6g}{basis}: "
    if failures:
        tail = ": the candidate is shown worse than allowed" if threshold.use_confidence_interval and \
            change.interval_end == "optimistic" and interval else ""
        return {**out, "passed": False, "reason": head + "; ".join(failures) + tail}
    return {**out, "passed": True, "reason": head + f"change {compared:+.6g} allowed"}


def _fmt(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.6g}"
