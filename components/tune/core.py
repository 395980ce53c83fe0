"""Hyperparameter search over the train core, and what every backend writes afterwards.

* :func:`run_trial` — one trial: a real training run (``kfpc.components.train.core.train``) on the train
  part of ``Split-train``, scored on its validation part. ``Split-eval`` is never read. The local backend,
  Katib trials and Vertex AI trials all run this function (the last two through ``python -m
  kfpc.components.tune.trial``).
* :func:`tune_local` — the local backend: an Optuna study (TPE, random or grid) over the spec.
* :func:`write_outputs` — ``history.json``, ``history.csv``, ``history.png`` and ``report.html``.
* :func:`record_in_card` — the chosen hyperparameters and the search history into a model card.

TensorFlow is imported only when a trial runs.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import defaults as D
from .._fs import atomic_dir
from . import spec as S

log = logging.getLogger(__name__)

HISTORY_JSON, HISTORY_CSV, HISTORY_PNG, REPORT_HTML = "history.json", "history.csv", "history.png", "report.html"
#: folder beside ``model_card.json`` holding the plot and the report
CARD_FOLDER = "tuning"
COMPLETE, FAILED = "COMPLETE", "FAILED"
#: what a pipeline passes when it does not set a parameter (the train core's own defaults)
TRAIN_DEFAULTS = {"hidden_units": list(D.HIDDEN_UNITS), "dropout": D.DROPOUT, "learning_rate": D.LEARNING_RATE,
                  "batch_size": D.BATCH_SIZE, "epochs": D.EPOCHS, "patience": D.PATIENCE}


class TuneError(ValueError):
    """The search cannot go on (too many failed trials, a parameter training does not have)."""


@dataclasses.dataclass
class TuneResult:
    """A finished search.

    Attributes:
        backend: ``local`` | ``katib`` | ``vertex``.
        spec: the search space.
        hyperparameters: the chosen training parameters: the baseline, then ``fixed``, then the best trial's.
        best_trial: number of the best trial; None when no trial completed (dry run).
        best_value: its objective; None without one.
        baseline_value: the objective of the baseline trial (the pipeline's own parameters), when it ran.
        history: one row per trial (``trial``, ``state``, ``baseline``, ``hyperparameters``, ``objective``,
            ``metrics``, ``seconds``, ``error``).
        note: what a reader should know (e.g. a dry run that tuned nothing).
    """

    backend: str
    spec: S.SearchSpec
    hyperparameters: dict
    best_trial: int | None
    best_value: float | None
    baseline_value: float | None
    history: list[dict]
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "backend": self.backend, "objective": {"metric": self.spec.metric, "direction": self.spec.direction},
            "hyperparameters": self.hyperparameters, "best_trial": self.best_trial, "best_value": self.best_value,
            "baseline_value": self.baseline_value, "trials": self.history, "spec": self.spec.to_dict(),
            "note": self.note,
        }


def baseline_hyperparameters(spec: S.SearchSpec, base: Mapping[str, Any] | None = None) -> dict:
    """The configuration trials start from: the train defaults, the pipeline's values, then ``fixed``."""
    merged = dict(TRAIN_DEFAULTS)
    merged.update({k: v for k, v in (base or {}).items() if v is not None})
    merged.update(spec.fixed)
    if "hidden_units" in merged:
        merged["hidden_units"] = [int(u) for u in merged["hidden_units"]]
    return merged


def is_better(spec: S.SearchSpec, value: float, than: float | None) -> bool:
    if than is None or not math.isfinite(than):
        return math.isfinite(value)
    return value > than if spec.direction == S.MAXIMIZE else value < than


def _train_kwargs(hyperparameters: Mapping[str, Any]) -> dict:
    """Training arguments the installed train core accepts; a non-default ``model_family`` it lacks is an error."""
    accepted = S.train_parameter_names() or set()
    kwargs = {}
    for name, value in hyperparameters.items():
        if name in accepted:
            kwargs[name] = value
        elif name == "model_family" and value == "dnn":
            continue  # today's train core trains the DNN only
        else:
            raise TuneError(f"training here has no parameter {name!r} (value {value!r}); the train core accepts "
                            f"{', '.join(sorted(accepted))}")
    return kwargs


def run_trial(dataset_dir: str | os.PathLike, *, label: str, hyperparameters: Mapping[str, Any],
              statistics_dir: str | os.PathLike | None = None, schema_path: str | os.PathLike | None = None,
              task: str = "auto", validation_fraction: float = 0.1, seed: int = 42,
              exclude: Sequence[str] = (), categorical_features: Sequence[str] = ()) -> dict:
    """One trial: train on the train part of ``Split-train``, score on its validation part.

    Args:
        dataset_dir: the Dataset artifact.
        label: the label column.
        hyperparameters: training parameters of this trial.
        statistics_dir, schema_path: optional input artifacts (as for train).
        task, validation_fraction, seed, exclude, categorical_features: as for train; the same for every trial
            so that all are scored on the same validation rows.
    Returns:
        ``{"metrics": {"validation_*": ..., "train_*": ...}, "validation": {...}, "epochs_trained", "best_epoch",
        "seconds"}``.
    Raises:
        TrainInputError: bad data (the same for every trial: the search stops).
    """
    from kfpc.components.train import core as train_core

    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="kfpc-trial-"))
    try:
        result = train_core.train(
            dataset_dir, scratch / "model", label=label, statistics_dir=statistics_dir, schema_path=schema_path,
            task=task, validation_fraction=validation_fraction, seed=seed, exclude=exclude,
            categorical_features=categorical_features, checkpoint_dir=None, tensorboard_dir=None, verbose=0,
            **_train_kwargs(hyperparameters),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    validation = result.metrics[train_core.VALIDATION]
    metrics = S.reported_metrics(validation)
    metrics.update({f"train_{k}": float(v) for k, v in result.metrics["train"].items() if k != "rows"})
    return {"metrics": metrics, "validation": validation, "epochs_trained": result.card["training"]["epochs_trained"],
            "best_epoch": result.card["training"]["best_epoch"], "seconds": round(time.time() - started, 1)}


# ------------------------------------------------------------------------------------------ optuna


def _distributions(spec: S.SearchSpec) -> dict:
    import optuna.distributions as D

    out = {}
    for p in spec.parameters:
        if p.type == S.FLOAT:
            out[p.name] = D.FloatDistribution(p.min, p.max, log=p.log)
        elif p.type == S.INT:
            out[p.name] = D.IntDistribution(int(p.min), int(p.max), log=p.log)
        else:
            # Optuna's categorical choices must be scalars: lists travel as their command-line text "64,32"
            out[p.name] = D.CategoricalDistribution([p.encode(v) if isinstance(v, tuple) else v for v in p.values])
    return out


def _sampler(spec: S.SearchSpec):
    import optuna

    if spec.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.algorithm == "grid":
        grid = {}
        for name, distribution in _distributions(spec).items():
            if isinstance(distribution, optuna.distributions.IntDistribution):
                grid[name] = list(range(distribution.low, distribution.high + 1))
            else:
                grid[name] = list(distribution.choices)
        return optuna.samplers.GridSampler(grid, seed=spec.seed)
    # a third of the budget (2 to 10 trials) explores at random before TPE models the results
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=max(2, min(10, spec.max_trials // 3)))


def _decode(spec: S.SearchSpec, params: Mapping[str, Any]) -> dict:
    out = {}
    for name, value in params.items():
        parameter = spec.parameter(name)
        out[name] = parameter.decode(value) if parameter.type == S.CHOICE and isinstance(value, str) else value
    return out


def _baseline_params(spec: S.SearchSpec, baseline: Mapping[str, Any], distributions: Mapping) -> dict | None:
    """The baseline as a point of the search space, or None when one of its values lies outside it."""
    point = {}
    for p in spec.parameters:
        if p.name not in baseline:
            return None
        value = baseline[p.name]
        if p.type == S.CHOICE:
            encoded = p.encode(value) if isinstance(value, (list, tuple)) else value
            if encoded not in distributions[p.name].choices:
                return None
            point[p.name] = encoded
        elif not p.min <= value <= p.max:
            return None
        else:
            point[p.name] = value
    return point


def tune_local(dataset_dir: str | os.PathLike, *, label: str, spec: S.SearchSpec,
               base: Mapping[str, Any] | None = None, statistics_dir=None, schema_path=None, task: str = "auto",
               validation_fraction: float = 0.1, seed: int = 42, exclude: Sequence[str] = (),
               categorical_features: Sequence[str] = ()) -> TuneResult:
    """Search with Optuna; every trial is :func:`run_trial`.

    Trials run one after another in this process (each trial's TensorFlow uses every core);
    ``parallel_trials`` is honoured by the Katib and Vertex backends.

    Args:
        dataset_dir: the Dataset artifact.
        label: the label column.
        spec: the search space.
        base: the pipeline's training parameters (the baseline every unsearched parameter keeps).
        statistics_dir, schema_path, task, validation_fraction, seed, exclude, categorical_features: as for train.
    Returns:
        TuneResult; the first trial is the baseline when it lies inside the space (``include_baseline``).
    Raises:
        TuneError: more than ``max_failed_trials`` trials failed; TrainInputError: bad data.
    """
    import optuna

    from kfpc.components.train.core import TrainError, TrainInputError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    baseline = baseline_hyperparameters(spec, base)
    distributions = _distributions(spec)
    study = optuna.create_study(direction=spec.direction, sampler=_sampler(spec))
    baseline_point = _baseline_params(spec, baseline, distributions) if spec.include_baseline else None
    if baseline_point is not None:
        study.enqueue_trial(baseline_point)
    elif spec.include_baseline:
        log.info("the baseline configuration lies outside the search space: it is not run as a trial")
    history, failures = [], 0
    best_value = best_trial = baseline_value = None
    for number in range(spec.max_trials):
        trial = study.ask(distributions)
        hyperparameters = {**baseline, **_decode(spec, trial.params)}
        is_baseline = number == 0 and baseline_point is not None
        row = {"trial": number, "baseline": is_baseline,
               "hyperparameters": {k: hyperparameters[k] for k in spec.names}}
        try:
            outcome = run_trial(dataset_dir, label=label, hyperparameters=hyperparameters,
                                statistics_dir=statistics_dir, schema_path=schema_path, task=task,
                                validation_fraction=validation_fraction, seed=seed, exclude=exclude,
                                categorical_features=categorical_features)
            value = S.objective_value(spec, outcome["validation"])
        except (TrainInputError, S.SpecError, TuneError):
            raise  # the same for every trial
        except (TrainError, ArithmeticError, RuntimeError, ValueError) as err:
            failures += 1
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            history.append({**row, "state": FAILED, "objective": None, "metrics": {}, "seconds": None,
                            "error": f"{type(err).__name__}: {err}"})
            log.warning("trial %d failed (%d of at most %d): %s", number, failures, spec.max_failed_trials, err)
            if failures > spec.max_failed_trials:
                raise TuneError(f"{failures} trials failed (max_failed_trials={spec.max_failed_trials}); the last: "
                                f"{type(err).__name__}: {err}") from err
            continue
        if not math.isfinite(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        history.append({**row, "state": COMPLETE if math.isfinite(value) else FAILED, "objective": value,
                        "metrics": outcome["metrics"], "epochs_trained": outcome["epochs_trained"],
                        "best_epoch": outcome["best_epoch"], "seconds": outcome["seconds"], "error": None})
        if is_baseline:
            baseline_value = value
        if is_better(spec, value, best_value):
            best_value, best_trial = value, number
        log.info("trial %d/%d %s: %s = %.5g (best %.5g, trial %s)", number + 1, spec.max_trials,
                 json.dumps(row["hyperparameters"]), spec.metric, value, best_value, best_trial)
    if best_trial is None:
        raise TuneError(f"no trial of {spec.max_trials} completed; see the failures: "
                        f"{'; '.join(r['error'] or 'non-finite objective' for r in history)}")
    chosen = {**baseline, **history[best_trial]["hyperparameters"]}
    return TuneResult("local", spec, chosen, best_trial, best_value, baseline_value, history)


def untuned_result(backend: str, spec: S.SearchSpec, base: Mapping[str, Any] | None, note: str) -> TuneResult:
    """What a dry run returns: the baseline configuration, no trials (so a pipeline still trains)."""
    return TuneResult(backend, spec, baseline_hyperparameters(spec, base), None, None, None, [], note)


def result_from_trials(backend: str, spec: S.SearchSpec, base: Mapping[str, Any] | None,
                       trials: Sequence[Mapping]) -> TuneResult:
    """A TuneResult from trials a remote backend ran (Katib, Vertex).

    Args:
        trials: ``{"trial": id, "hyperparameters": {name: command-line text}, "metrics": {name: value},
            "state": COMPLETE|FAILED}`` each.
    """
    baseline = baseline_hyperparameters(spec, base)
    history, best_value, best_index = [], None, None
    for index, trial in enumerate(trials):
        values = {name: spec.parameter(name).decode(text) for name, text in trial["hyperparameters"].items()
                  if name in spec.names}
        metrics = {k: float(v) for k, v in trial.get("metrics", {}).items()}
        value = metrics.get(spec.metric)
        state = trial.get("state", COMPLETE) if value is not None and math.isfinite(value) else FAILED
        history.append({"trial": trial["trial"], "baseline": False, "hyperparameters": values, "state": state,
                        "objective": value, "metrics": metrics, "seconds": trial.get("seconds"),
                        "error": trial.get("error")})
        if state == COMPLETE and is_better(spec, value, best_value):
            best_value, best_index = value, index
    if best_index is None:
        raise TuneError(f"{backend}: no trial reported {spec.metric!r}; {len(trials)} trial(s) seen")
    chosen = {**baseline, **history[best_index]["hyperparameters"]}
    return TuneResult(backend, spec, chosen, history[best_index]["trial"], best_value, None, history)


# ---------------------------------------------------------------------------------------- outputs


def _plot(result: TuneResult) -> bytes | None:
    completed = [r for r in result.history if r["state"] == COMPLETE]
    if not completed:
        return None
    try:
        import matplotlib
    except ImportError:  # an image without matplotlib still gets the table, the card and the HTML report
        log.warning("matplotlib is not installed: the search history is written without a plot")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.6), dpi=100)
    xs = [r["trial"] for r in completed]
    ys = [r["objective"] for r in completed]
    axes.scatter(xs, ys, s=22, color="#4c72b0", label="trial")
    best, running = None, []
    for y in ys:
        best = y if best is None or is_better(result.spec, y, best) else best
        running.append(best)
    axes.step(xs, running, where="post", color="#dd8452", label="best so far")
    baseline = [r for r in completed if r.get("baseline")]
    if baseline:
        axes.scatter([baseline[0]["trial"]], [baseline[0]["objective"]], marker="*", s=160, color="#c44e52",
                     label="baseline (pipeline parameters)", zorder=3)
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{result.spec.metric} ({result.spec.direction})")
    axes.set_title(f"{result.backend} search: {len(completed)} completed of {len(result.history)} trials")
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def history_table(result: TuneResult) -> tuple[list[str], list[list[str]]]:
    """The search history as a header and rows of text (trial, state, objective, each searched parameter)."""
    names = result.spec.names
    header = ["trial", "state", "baseline", result.spec.metric, *names, "seconds"]
    rows = [[_cell(r["trial"]), r["state"], "yes" if r.get("baseline") else "", _cell(r["objective"]),
             *[_cell(r["hyperparameters"].get(n)) for n in names], _cell(r.get("seconds"))] for r in result.history]
    return header, rows


def _report(result: TuneResult, png: bytes | None) -> str:
    import base64

    header, rows = history_table(result)
    best = result.best_trial
    chosen = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_cell(v))}</td></tr>"
                     for k, v in result.hyperparameters.items())
    table = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(
        "<tr" + (' class="best"' if row[0] == _cell(best) else "") + ">"
        + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    image = (f'<img alt="search history" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
             if png else "<p>No plot: no trial completed, or matplotlib is not installed.</p>")
    summary = (f"best trial {best}: {result.spec.metric} = {_cell(result.best_value)}"
               + (f" (baseline {_cell(result.baseline_value)})" if result.baseline_value is not None else "")
               if best is not None else "no trial ran")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>kfpc tuning</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 6px;font-size:13px}}tr.best{{background:#fde9d9}}</style></head><body>
<h1>Hyperparameter search ({html.escape(result.backend)})</h1>
<p>Objective: {html.escape(result.spec.direction)} {html.escape(result.spec.metric)} on the validation part of
Split-train; Split-eval was not read. {html.escape(summary)}.</p>
{f"<p>{html.escape(result.note)}</p>" if result.note else ""}
<h2>Chosen hyperparameters</h2><table>{chosen}</table>
<h2>History</h2>{image}<table>{table}</table></body></html>
"""


def write_outputs(result: TuneResult, output_dir: str | os.PathLike) -> Path:
    """Write ``history.json`` (everything), ``history.csv``, ``history.png`` and ``report.html``, atomically.

    Returns:
        The folder.
    """
    png = _plot(result)
    with atomic_dir(output_dir) as scratch:
        (scratch / HISTORY_JSON).write_text(json.dumps(result.to_dict(), indent=1, default=_cell))
        header, rows = history_table(result)
        with open(scratch / HISTORY_CSV, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        if png:
            (scratch / HISTORY_PNG).write_bytes(png)
        (scratch / REPORT_HTML).write_text(_report(result, png))
    return Path(output_dir)


def load_result(output_dir: str | os.PathLike) -> dict:
    """``history.json`` of a tuning output folder."""
    path = Path(output_dir) / HISTORY_JSON
    if not path.exists():
        raise FileNotFoundError(f"{output_dir}: no {HISTORY_JSON}; not a tuning artifact")
    return json.loads(path.read_text())


def record_in_card(model_dir: str | os.PathLike, tuning_dir: str | os.PathLike,
                   output_dir: str | os.PathLike) -> dict:
    """Copy a Model artifact and add the search to its card: ``card["tuning"]`` (backend, objective,
    chosen hyperparameters, best / baseline value, the history table) and ``tuning/history.png`` +
    ``tuning/report.html`` beside the card.

    Args:
        model_dir: the trained Model artifact (``1/`` + ``model_card.json``).
        tuning_dir: the tuning output (:func:`write_outputs`).
        output_dir: the new Model artifact folder.
    Returns:
        The card written.
    """
    from kfpc.components import types
    from kfpc.components.contract import read_card as load_model_card

    card = load_model_card(model_dir)
    search = load_result(tuning_dir)
    header = ["trial", "state", "baseline", search["objective"]["metric"], *search["spec"]["parameters"]]
    card["tuning"] = {
        "backend": search["backend"], "objective": search["objective"],
        "hyperparameters": search["hyperparameters"], "best_trial": search["best_trial"],
        "best_value": search["best_value"], "baseline_value": search["baseline_value"],
        "trials": len(search["trials"]), "note": search.get("note", ""),
        "history": {"columns": header, "rows": [
            [t["trial"], t["state"], t.get("baseline", False), t["objective"],
             *[t["hyperparameters"].get(n) for n in search["spec"]["parameters"]]] for t in search["trials"]]},
        "plot": f"{CARD_FOLDER}/{HISTORY_PNG}" if (Path(tuning_dir) / HISTORY_PNG).exists() else None,
        "report": f"{CARD_FOLDER}/{REPORT_HTML}",
    }
    with atomic_dir(output_dir) as scratch:
        for entry in Path(model_dir).iterdir():
            target = scratch / entry.name
            if entry.is_dir():
                shutil.copytree(entry, target)
            elif entry.name != types.MODEL_CARD_FILE:
                shutil.copy2(entry, target)
        (scratch / CARD_FOLDER).mkdir(exist_ok=True)
        for name in (HISTORY_PNG, REPORT_HTML):
            if (Path(tuning_dir) / name).exists():
                shutil.copy2(Path(tuning_dir) / name, scratch / CARD_FOLDER / name)
        (scratch / types.MODEL_CARD_FILE).write_text(json.dumps(card, indent=2, default=_cell))
    return card


def pipeline_outputs(result: TuneResult) -> dict:
    """The chosen configuration as the tune components' outputs (what the train step takes), plus all of it
    as JSON (``hyperparameters_json``, for parameters the train step gains later, such as ``model_family``)."""
    chosen = result.hyperparameters
    return {
        "hidden_units": [int(u) for u in chosen["hidden_units"]], "dropout": float(chosen["dropout"]),
        "learning_rate": float(chosen["learning_rate"]), "batch_size": int(chosen["batch_size"]),
        "epochs": int(chosen["epochs"]), "patience": int(chosen["patience"]),
        # the family the trials trained (the train core's default unless the space searched or fixed it), so the
        # final training fits the configuration the search chose, not another family with these parameters
        "model_family": str(chosen.get("model_family") or "dnn"),
        "hyperparameters_json": json.dumps(chosen, sort_keys=True, default=_cell),
    }
