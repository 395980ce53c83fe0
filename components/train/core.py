"""Train a TensorFlow model from a Dataset (+ statistics and schema) into a KServe-ready SavedModel.

The flow of :func:`train`:

1. :func:`kfpc.components.train.features.build_spec` decides features, preprocessing constants and the
   head from the schema and statistics, and rejects bad input before TensorFlow starts;
2. :func:`kfpc.components.train.distribution.select_strategy` picks the strategy for the node
   (multi-worker / multi-GPU / default) and the precision;
3. ``Split-train`` is carved into a training part and a validation part (a deterministic draw of row
   positions, :class:`kfpc.components.train.input.Carve`); the model trains on the first, streamed from
   Parquet, and is validated on the second every epoch, with early stopping on the validation loss.
   ``Split-eval`` is never read: it is kept for evaluation, the only place metrics are reported and gated
   (train counts its rows from the Parquet metadata);
4. every epoch a checkpoint (model + optimizer + the early-stopping state) is written under
   ``checkpoint_dir``; a retried task restores the last one and continues with the next epoch;
5. the best epoch's weights are exported as ``<model_dir>/1/`` (SavedModel, ``serving_default`` taking raw
   features) with ``<model_dir>/model_card.json`` beside it, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__, artifacts, contract, types
from .. import _progress as progress
from .. import defaults as D
from .._fs import atomic_dir
from . import features as F
from .features import TrainInputError  # noqa: F401  (re-exported for callers)

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LAST_PREFIX = "last"
BEST_PREFIX = "best"
DEFAULTS = {
    "hidden_units": D.HIDDEN_UNITS,
    "dropout": D.DROPOUT,
    "learning_rate": D.LEARNING_RATE,
    "batch_size": D.BATCH_SIZE,  # auto: see auto_batch_size
    "epochs": D.EPOCHS,
    "patience": D.PATIENCE,
    "seed": D.SEED,
    "shuffle_buffer": D.SHUFFLE_BUFFER,
    "validation_fraction": D.VALIDATION_FRACTION,
}
VALIDATION = "validation"
DNN, GBDT, AUTO = "dnn", "gbdt", "auto"
#: ``model_family`` values: the Keras network, YDF gradient-boosted trees, or both with the better one kept
MODEL_FAMILIES = (DNN, GBDT, AUTO)


class TrainError(ValueError):
    """A training parameter is invalid; the message names the parameter and the value."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        metrics: part -> metric name -> value (``train`` and ``validation``, the two parts of ``Split-train``),
            in the label's units.
        card: the model card written beside the SavedModel.
        epochs_trained: epochs completed in total (over all attempts).
        resumed_from_epoch: the epoch a retry resumed after (0 when training started fresh).
        placement: the strategy / devices summary.
        model: the trained Keras model (in-process use: notebooks, tests); None when nothing was trained.
        spec: the TrainingSpec the model was built from; None when nothing was trained.
        validation_losses: family -> per-row validation losses (:func:`row_losses`) of each family trained
            (what ``auto`` compared); empty when nothing was trained.
    """

    metrics: dict[str, dict[str, float]]
    card: dict
    epochs_trained: int
    resumed_from_epoch: int
    placement: dict
    model: object = None
    spec: F.TrainingSpec | None = None
    validation_losses: dict = dataclasses.field(default_factory=dict)


def auto_batch_size(rows: int) -> int:
    """The batch size used when none is given: about a hundredth of the training rows as a power of two,
    between 32 (small tables still get ~100 updates per epoch) and 1024 (large tables keep a GPU busy)."""
    if rows <= 0:
        return 32
    return int(min(1024, max(32, 2 ** round(math.log2(rows / 100))))) if rows >= 100 else 32


def _check_parameters(hidden_units, dropout, learning_rate, batch_size, epochs, patience, shuffle_buffer,
                      validation_fraction=DEFAULTS["validation_fraction"]) -> None:
    if not hidden_units or any(int(u) <= 0 for u in hidden_units):
        raise TrainError(f"hidden_units must be a non-empty list of positive sizes, got {list(hidden_units)}")
    if not 0.0 <= dropout < 1.0:
        raise TrainError(f"dropout must be in [0, 1), got {dropout}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise TrainError(f"learning_rate must be positive, got {learning_rate}")
    if batch_size < 0:
        raise TrainError(f"batch_size must be positive, or 0 for a size chosen from the rows, got {batch_size}")
    if epochs <= 0:
        raise TrainError(f"epochs must be positive, got {epochs}")
    if patience < 0:
        raise TrainError(f"patience must be >= 0 (0 disables early stopping), got {patience}")
    if shuffle_buffer < 0:
        raise TrainError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
    if isinstance(validation_fraction, bool) or not (
            isinstance(validation_fraction, int | float) and 0.0 < validation_fraction <= 0.5):
        raise TrainError(f"validation_fraction must be in (0, 0.5], got {validation_fraction!r}")


# ----------------------------------------------------------------------------------- checkpoints


class _State:
    """Progress that must survive a retry: epochs done, early-stopping bookkeeping, history."""

    def __init__(self, path: Path | None):
        self.path = path
        self.epoch = 0
        self.best_loss = math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped = False
        self.exported = False
        self.history: list[dict] = []
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            self.epoch, self.best_loss = int(data["epoch"]), float(data["best_loss"])
            self.best_epoch, self.wait = int(data["best_epoch"]), int(data["wait"])
            self.stopped, self.history = bool(data["stopped"]), list(data["history"])
            self.exported = bool(data.get("exported", False))

    def write(self) -> None:
        if self.path is None:
            return
        data = {
            "epoch": self.epoch, "best_loss": self.best_loss if math.isfinite(self.best_loss) else 1e308,
            "best_epoch": self.best_epoch, "wait": self.wait, "stopped": self.stopped, "exported": self.exported,
            "history": self.history,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1))
        os.replace(temporary, self.path)  # a kill mid-write leaves the previous state intact


def _make_checkpoint_callback(model, state: _State, checkpoint_dir: Path | None, patience: int, is_chief: bool):
    import keras
    import tensorflow as tf

    class EpochCheckpoint(keras.callbacks.Callback):
        """Checkpoint every epoch, keep the best weights, stop early; all of it resumable."""

        def __init__(self):
            super().__init__()
            self.last = self.best = None
            if checkpoint_dir is not None:
                # Every worker must save (the variables are all-reduced), but only the chief's copy is kept;
                # the others write to a scratch folder (the pattern tf.distribute's docs prescribe).
                self.directory = checkpoint_dir if is_chief else Path(tempfile.mkdtemp(prefix="kfpc-worker-ckpt-"))
                self.last = tf.train.CheckpointManager(
                    tf.train.Checkpoint(model=model, optimizer=model.optimizer),
                    os.fspath(self.directory), max_to_keep=1, checkpoint_name=LAST_PREFIX,
                )
                self.best = tf.train.CheckpointManager(
                    tf.train.Checkpoint(model=model), os.fspath(self.directory / BEST_PREFIX), max_to_keep=1,
                    checkpoint_name=BEST_PREFIX,
                )

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            loss = float(logs.get("val_loss", logs.get("loss", math.nan)))
            state.epoch = epoch + 1
            state.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
            improved = math.isfinite(loss) and loss < state.best_loss
            if improved:
                state.best_loss, state.best_epoch, state.wait = loss, epoch + 1, 0
                if self.best is not None:
                    self.best.save(checkpoint_number=epoch + 1)
                else:
                    self.best_weights = [v.numpy() for v in model.weights]
            else:
                state.wait += 1
            if patience and state.wait >= patience:
                state.stopped = True
                self.model.stop_training = True
                log.info("early stopping after epoch %d: validation loss has not improved for %d epochs", epoch + 1,
                         patience)
            if self.last is not None:
                self.last.save(checkpoint_number=epoch + 1)
            if is_chief:
                state.write()
            # a progress line on stdout: the task log in the KFP UI, and `kfpc run` shows it in the terminal
            total = int((self.params or {}).get("epochs") or 0)
            begun = getattr(self, "first_epoch", epoch)
            progress.emit("train", f"epoch {epoch + 1}/{total or '?'} "
                          + " ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
                          + f" best_epoch={state.best_epoch}",
                          eta_s=progress.remaining(epoch + 1 - begun, total - begun, time.time() - self.started))

        def on_epoch_begin(self, epoch, logs=None):
            if not hasattr(self, "started"):
                self.started, self.first_epoch = time.time(), epoch

        def restore_best(self):
            if self.best is not None and self.best.latest_checkpoint:
                tf.train.Checkpoint(model=model).restore(self.best.latest_checkpoint).expect_partial()
            elif getattr(self, "best_weights", None) is not None:
                for variable, value in zip(model.weights, self.best_weights, strict=True):
                    variable.assign(value)

        def cleanup(self):
            if checkpoint_dir is not None and not is_chief:
                shutil.rmtree(self.directory, ignore_errors=True)

    return EpochCheckpoint()


# -------------------------------------------------------------------------------------- metrics


def evaluate_split(model, spec: F.TrainingSpec, path: Path, batch_size: int = 4096, carve=None,
                   part: str | None = None, losses: list | None = None) -> dict[str, float]:
    """Metrics of the model on one split (or, with ``carve``, one part of it), streamed, in the label's units.

    Classification: ``log_loss``, ``accuracy`` (and ``auc`` for binary); regression: ``mse``, ``rmse``,
    ``mae``, ``r2``; always ``rows`` (rows with a label). ``losses``: a list that gets each batch's
    per-row losses (:func:`row_losses`), in the order of the rows.
    """
    import keras
    import tensorflow as tf

    from . import input as data_input
    from . import model as model_lib

    # One trace for every batch size (the signature has a [None] batch dimension).
    predict = tf.function(lambda features: model_lib.outputs_from_model(model, features, spec),
                          input_signature=[data_input.output_signature(spec, with_label=False)])
    rows = 0
    if spec.label.task == F.REGRESSION:
        sum_error2 = sum_abs = sum_y = sum_y2 = 0.0
        for features, target in data_input.iterate_batches(path, spec, batch_size, carve=carve, part=part):
            y = target.astype(np.float64) * spec.label.std + spec.label.mean
            prediction = predict(features)["predictions"].numpy().astype(np.float64)
            error = prediction - y
            squared = error**2  # row_losses' per-row losses, computed once for both uses
            if losses is not None:
                losses.append(squared)
            sum_error2 += float(squared.sum())
            sum_abs += float(np.abs(error).sum())
            sum_y += float(y.sum())
            sum_y2 += float((y**2).sum())
            rows += len(y)
        if rows == 0:
            raise TrainInputError(f"{path}: no rows with a label to evaluate on{f' in the {part} part' if part else ''}")
        mse = sum_error2 / rows
        variance = sum_y2 / rows - (sum_y / rows) ** 2
        return {
            "rows": rows, "mse": mse, "rmse": math.sqrt(mse), "mae": sum_abs / rows,
            "r2": 1.0 - mse / variance if variance > 0 else 0.0,
        }
    log_loss = correct = 0.0
    auc = keras.metrics.AUC(num_thresholds=1000) if spec.label.task == F.BINARY else None
    for features, target in data_input.iterate_batches(path, spec, batch_size, carve=carve, part=part):
        probabilities = predict(features)["probabilities"].numpy()
        picked = probabilities[np.arange(len(target)), target]
        if losses is not None:
            losses.append(row_losses(probabilities, target, spec))
        log_loss += float(-np.log(np.clip(picked, 1e-7, 1.0)).sum())
        correct += float((probabilities.argmax(axis=1) == target).sum())
        if auc is not None:
            auc.update_state(target, probabilities[:, 1])
        rows += len(target)
    if rows == 0:
        raise TrainInputError(
            f"{path}: no rows with a known class to evaluate on{f' in the {part} part' if part else ''}")
    metrics = {"rows": rows, "log_loss": log_loss / rows, "accuracy": correct / rows}
    if auc is not None:
        metrics["auc"] = float(auc.result().numpy())
    return metrics


# ------------------------------------------------------------------------------------------ parts


def _carve(train_path: Path, spec: F.TrainingSpec, validation_fraction: float, seed: int):
    """The validation carve of ``Split-train`` and the rows (and rows without a label) of each part.

    Reads the label column once; a part without a labelled row is a :class:`TrainInputError`.
    """
    import pyarrow.parquet as pq

    from . import input as data_input

    rows = pq.ParquetFile(train_path).metadata.num_rows
    try:
        carve = data_input.Carve(rows, validation_fraction, seed)
    except ValueError as err:
        raise TrainInputError(f"{train_path}: {err}") from None
    parts = data_input.count_parts(train_path, spec, carve)
    for part, counts in parts.items():
        if counts["missing_label"]:
            log.warning("%d of the %d rows of the %s part of %s have no label %r (or a class the model does not "
                        "know): they are not used", counts["missing_label"], counts["rows"], part, train_path,
                        spec.label.name)
        if counts["rows"] == counts["missing_label"]:
            raise TrainInputError(
                f"{train_path}: the {part} part ({counts['rows']} of {rows} rows, validation_fraction="
                f"{validation_fraction}) has no row with a label {spec.label.name!r}; add labelled rows or change "
                "validation_fraction")
    log.info("Split-train carved by row position (seed %d): %d rows to train on, %d to validate on (early "
             "stopping); Split-eval is not read", seed, parts[data_input.TRAIN_PART]["rows"],
             parts[data_input.VALIDATION_PART]["rows"])
    return carve, parts


def _eval_rows(dataset_dir, label: str) -> tuple[int | None, int | None]:
    """Rows of ``Split-eval`` and of them the rows with a null label, from the Parquet footer alone.

    Returns:
        ``(rows, null labels)``; ``(None, None)`` without an eval split; null labels None when a row group
        has no null count in its statistics.
    """
    import pyarrow.parquet as pq

    path = artifacts.split_file(dataset_dir, types.EVAL, must_exist=False)
    if not path.exists():
        return None, None
    metadata = pq.ParquetFile(path).metadata
    schema = metadata.schema.to_arrow_schema()
    if label not in schema.names:
        return metadata.num_rows, None
    column = schema.get_field_index(label)
    missing = 0
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_null_count:
            return metadata.num_rows, None
        missing += statistics.null_count
    if missing:
        log.warning("%d of the %d rows of %s have no label %r: evaluation will not score them", missing,
                    metadata.num_rows, path, label)
    return metadata.num_rows, missing


# ------------------------------------------------------------------------------------------ train


def train(
    dataset_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    label: str,
    statistics_dir: str | os.PathLike | None = None,
    schema_path: str | os.PathLike | None = None,
    task: str = "auto",
    hidden_units: Sequence[int] = DEFAULTS["hidden_units"],
    dropout: float = DEFAULTS["dropout"],
    learning_rate: float = DEFAULTS["learning_rate"],
    batch_size: int = DEFAULTS["batch_size"],
    epochs: int = DEFAULTS["epochs"],
    patience: int = DEFAULTS["patience"],
    seed: int = DEFAULTS["seed"],
    checkpoint_dir: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    shuffle_buffer: int = DEFAULTS["shuffle_buffer"],
    validation_fraction: float = DEFAULTS["validation_fraction"],
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    categorical_features: Sequence[str] = (),
    max_vocabulary: int = F.DEFAULT_MAX_VOCABULARY,
    one_hot_max: int = F.DEFAULT_ONE_HOT_MAX,
    strategy: str = "auto",
    mixed_precision: str = "auto",
    devices: Sequence[str] | None = None,
    statistics_uri: str | None = None,
    verbose: int = 2,
    model_family: str = DNN,
    gbdt_hyperparameters: dict | None = None,
) -> TrainResult:
    """Train on ``Split-train`` (early stopping on a validation part carved from it) and export a SavedModel
    with its model card. ``Split-eval`` is never read (only its row count, from the Parquet metadata).

    Args:
        dataset_dir: the Dataset artifact (``Split-train/data.parquet``, ``Split-eval/data.parquet``).
        model_dir: the Model artifact folder to create (must be absent or empty): ``1/`` + ``model_card.json``.
        label: the label column.
        statistics_dir: statistics artifact (``Split-train/FeatureStats.pb``); None computes the numbers
            with one streaming pass.
        schema_path: schema artifact folder or ``schema.pbtxt``; None infers types from the Parquet schema.
        task: ``auto`` | ``binary`` | ``multiclass`` | ``regression``.
        hidden_units: sizes of the hidden Dense layers.
        dropout: dropout rate after each hidden layer.
        learning_rate: Adam's learning rate.
        batch_size: global batch size (split over replicas and workers); 0 picks ``auto_batch_size`` of the
            training rows (32 for hundreds of rows, 1024 from ~100k rows).
        epochs: maximum number of epochs.
        patience: epochs without improvement of the validation loss before stopping; 0 never stops early.
        seed: seeds weights, dropout and shuffling.
        checkpoint_dir: where a checkpoint is written every epoch and restored from on a retry; None: no
            checkpoints.
        tensorboard_dir: TensorBoard log folder; None: no logs.
        shuffle_buffer: rows shuffled together (memory ~ this many rows).
        validation_fraction: share of ``Split-train`` rows drawn (by row position and ``seed``) for the
            validation part, in (0, 0.5]; a small table still gets min(20, a quarter of its rows).
        features: feature columns (default: every column but the label and ``exclude``).
        exclude: columns never used as features (each must exist; the label cannot be excluded).
        categorical_features: numeric columns to treat as categories.
        max_vocabulary: most frequent values kept per categorical feature.
        one_hot_max: vocabularies up to this size are one-hot encoded, larger ones embedded.
        strategy: ``auto`` | ``default`` | ``mirrored`` | ``multi_worker``.
        mixed_precision: ``auto`` | ``on`` | ``off``.
        devices: devices for ``mirrored`` (default: every GPU).
        statistics_uri: URI of the statistics artifact, recorded in the card (default: ``statistics_dir``).
        verbose: Keras fit verbosity.
        model_family: ``dnn`` (the Keras network), ``gbdt`` (YDF gradient-boosted trees, early-stopped on the
            validation part, refit on both parts up to ``gbdt.REFIT_MAX_ROWS``, exported as a stock-op SavedModel) or
            ``auto`` (both; the trees are exported unless the network's validation log loss / mse is lower by
            more than :data:`SELECTION_MARGIN` standard errors, see :func:`_choose`; both scores go into the card's
            ``model_selection``).
        gbdt_hyperparameters: overrides of :data:`kfpc.components.train.gbdt.DEFAULTS` (``num_trees``,
            ``max_depth``, ``shrinkage``, ``min_examples``, ``use_hessian_gain``, ``early_stopping_num_trees_look_ahead``,
            ``max_vocab_count``).
    Returns:
        TrainResult (metrics of the train and validation parts, the card, epochs, placement).
    Raises:
        TrainInputError: bad data (before any training step); TrainError: bad parameters.
    """
    started = time.time()
    hidden_units = [int(u) for u in hidden_units]
    _check_parameters(hidden_units, dropout, learning_rate, batch_size, epochs, patience, shuffle_buffer,
                      validation_fraction)
    if model_family not in MODEL_FAMILIES:
        raise TrainError(f"model_family must be one of {', '.join(MODEL_FAMILIES)}, got {model_family!r}")
    gbdt_parameters = _gbdt_parameters(gbdt_hyperparameters)
    spec = F.build_spec(
        dataset_dir, label, statistics_dir=statistics_dir, schema_path=schema_path, task=task, features=features,
        exclude=exclude, categorical_features=categorical_features, max_vocabulary=max_vocabulary,
        one_hot_max=one_hot_max,
    )
    log.info(
        "task %s on label %r (%s); %d features: %s", spec.label.task, label, spec.label.classes or "numeric",
        len(spec.features), ", ".join(f"{f.name}:{f.kind}{'/' + f.encoding if f.encoding else ''}" for f in spec.features),
    )
    model_dir = Path(model_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state = _State(checkpoint_dir / STATE_FILE if checkpoint_dir else None)
    if state.exported and contract.card_file(model_dir).exists():
        # A previous attempt exported the model and was killed before the task reported success.
        card = contract.read_card(model_dir)
        log.info("model already exported by a previous attempt of this task: %s", model_dir)
        return TrainResult(
            metrics=card["metrics"], card=card, epochs_trained=state.epoch, resumed_from_epoch=state.epoch,
            placement={k: card["training"].get(k) for k in ("strategy", "devices", "num_workers", "task")},
        )

    from . import input as data_input

    train_path = artifacts.split_file(dataset_dir, types.TRAIN)
    carve, parts = _carve(train_path, spec, validation_fraction, seed)
    eval_rows, eval_missing = _eval_rows(dataset_dir, spec.label.name)

    candidates: dict[str, dict] = {}
    if model_family in (DNN, AUTO):
        candidates[DNN] = _train_dnn(
            spec, train_path, carve, parts, state, checkpoint_dir, tensorboard_dir, seed=seed,
            hidden_units=hidden_units, dropout=dropout, learning_rate=learning_rate, batch_size=batch_size,
            epochs=epochs, patience=patience, shuffle_buffer=shuffle_buffer, strategy=strategy,
            mixed_precision=mixed_precision, devices=devices, verbose=verbose,
            hyperparameters={"max_vocabulary": max_vocabulary, "one_hot_max": one_hot_max,
                             "validation_fraction": validation_fraction})
    if model_family in (GBDT, AUTO):
        candidates[GBDT] = _train_gbdt(spec, train_path, carve, gbdt_parameters, seed,
                                       {"validation_fraction": validation_fraction})
    chosen, selection = _choose(candidates, spec)
    result = candidates[chosen]
    placement = result["placement"]

    import tensorflow as tf

    card = {
        types.LABEL: spec.label.name,
        types.TASK: spec.label.task,
        types.CLASSES: list(spec.label.classes),
        types.FEATURES: [f.card_entry() for f in spec.features],
        "schema_hash": spec.schema_hash,
        "training_statistics_uri": statistics_uri or (os.fspath(statistics_dir) if statistics_dir else None),
        "metrics": result["metrics"],
        types.KFPC_VERSION: __version__,
        types.FRAMEWORK: f"tensorflow {tf.__version__}" + (f" (trees trained by ydf {result['ydf_version']})"
                                                          if chosen == GBDT else ""),
        "model_family": chosen,
        "model_selection": selection,
        "hyperparameters": result["hyperparameters"],
        "signature": {
            "name": types.SERVING_SIGNATURE,
            "inputs": {f.input: "string" if f.dtype == F.STRING else "float64" for f in spec.features},
            "outputs": list(contract.expected_outputs(spec.label.task)),
        },
        "label_statistics": {"mean": spec.label.mean, "std": spec.label.std} if spec.label.task == F.REGRESSION else None,
        "training": {
            "train_rows": parts[data_input.TRAIN_PART]["rows"],
            "validation_rows": parts[data_input.VALIDATION_PART]["rows"],
            "eval_rows": eval_rows,
            "dropped_rows_missing_label": {
                types.TRAIN: parts[data_input.TRAIN_PART]["missing_label"],
                VALIDATION: parts[data_input.VALIDATION_PART]["missing_label"],
                types.EVAL: eval_missing,
            },
            "validation_split": {"source": types.TRAIN, **carve.describe()},
            **result["training"],
            "statistics_source": spec.statistics_source,
            "seconds": round(time.time() - started, 1), **placement.describe(),
        },
    }
    if placement.is_chief:
        with atomic_dir(model_dir) as scratch:
            summary = result["export"](scratch)
            if summary:
                card["export"] = summary
            contract.write_card(card, scratch)
        if checkpoint_dir is not None:
            state.exported = True
            state.write()
    elif DNN in candidates:
        # Saving runs collectives on every worker; non-chief workers write to scratch and discard it.
        scratch = tempfile.mkdtemp(prefix="kfpc-worker-model-")
        candidates[DNN]["export"](Path(scratch))
        shutil.rmtree(scratch, ignore_errors=True)
    return TrainResult(
        metrics=result["metrics"], card=card, epochs_trained=state.epoch,
        resumed_from_epoch=candidates[DNN]["resumed_from"] if DNN in candidates else 0,
        placement=placement.describe(), model=result["model"], spec=spec,
        validation_losses={family: c["validation_losses"] for family, c in candidates.items()},
    )


def _gbdt_parameters(given: dict | None) -> dict:
    from . import gbdt

    parameters = dict(gbdt.DEFAULTS)
    unknown = sorted(set(given or {}) - set(parameters))
    if unknown:
        raise TrainError(f"gbdt_hyperparameters: unknown key(s) {unknown}; known: {sorted(parameters)}")
    parameters.update(given or {})
    if int(parameters["num_trees"]) < 1 or int(parameters["max_depth"]) < 1:
        raise TrainError(f"gbdt_hyperparameters: num_trees and max_depth must be >= 1, got {parameters}")
    if int(parameters["max_vocab_count"]) < 1:
        raise TrainError(f"gbdt_hyperparameters: max_vocab_count must be >= 1, got {parameters['max_vocab_count']}")
    if not 0 < float(parameters["shrinkage"]) <= 1:
        raise TrainError(f"gbdt_hyperparameters: shrinkage must be in (0, 1], got {parameters['shrinkage']}")
    return parameters


#: the validation metric ``auto`` picks the family by (lower is better): proper scores, in the label's units
SELECTION_METRIC = {F.BINARY: "log_loss", F.MULTICLASS: "log_loss", F.REGRESSION: "mse"}
#: ``auto`` keeps the trees unless the network's validation loss is lower by more than this many standard
#: errors of the paired per-row difference
SELECTION_MARGIN = 2.0


def row_losses(prediction: np.ndarray, target: np.ndarray, spec: F.TrainingSpec) -> np.ndarray:
    """Per-row losses behind :data:`SELECTION_METRIC`: log loss of the true class, or the squared error."""
    if spec.label.task == F.REGRESSION:
        return (np.asarray(prediction, dtype=np.float64).reshape(-1) - target) ** 2
    picked = np.asarray(prediction, dtype=np.float64)[np.arange(len(target)), np.asarray(target, dtype=np.int64)]
    return -np.log(np.clip(picked, 1e-7, 1.0))


def _choose(candidates: dict[str, dict], spec: F.TrainingSpec) -> tuple[str, dict]:
    """The family ``auto`` keeps, and what the card records of the choice.

    Gradient-boosted trees are the stronger family on most tables (the quality bench); the network is kept
    only when its validation loss is lower by more than :data:`SELECTION_MARGIN` standard errors of the
    paired per-row difference (the same validation rows scored by both). On validation parts of tens of rows
    a lower mean loss is mostly noise: choosing by it alone picked the network on 4 of 7 small tables where
    the trees scored better on eval. A family whose score is not finite is never kept over one that is.
    """
    metric = SELECTION_METRIC[spec.label.task]
    scores = {family: float(c["metrics"][VALIDATION][metric]) for family, c in candidates.items()}
    selection = {"metric": f"{VALIDATION}_{metric}", "scores": scores,
                 "validation_metrics": {family: c["metrics"][VALIDATION] for family, c in candidates.items()}}
    if len(candidates) == 1:
        chosen = next(iter(candidates))
        return chosen, {**selection, "chosen": chosen}
    finite = {family: math.isfinite(score) for family, score in scores.items()}
    if not all(finite.values()):
        chosen = GBDT if finite.get(GBDT) else DNN
        rule = "the only finite validation score"
    else:
        dnn, trees = (np.asarray(candidates[f]["validation_losses"], dtype=np.float64) for f in (DNN, GBDT))
        if dnn.shape != trees.shape:
            raise TrainError(f"model_family auto: the two families scored different validation rows "
                             f"({dnn.size} and {trees.size}); cannot compare them row by row")
        difference = dnn - trees
        mean = float(difference.mean())
        # (one validation row has no standard error: nothing shows the network better beyond noise)
        error = float(difference.std(ddof=1) / math.sqrt(difference.size)) if difference.size > 1 else None
        chosen = DNN if error is not None and mean < -SELECTION_MARGIN * error else GBDT
        selection.update({"difference_dnn_minus_gbdt": mean, "standard_error": error,
                          "rows": int(difference.size)})
        rule = (f"trees unless the network's validation {metric} is lower by more than {SELECTION_MARGIN:g} "
                "standard errors of the paired per-row difference")
    log.info("model_family auto: validation %s %s; chose %s (%s)", metric, json.dumps(scores), chosen, rule)
    return chosen, {**selection, "chosen": chosen, "rule": rule}


class _CpuPlacement:
    """The placement summary of a GBDT-only step (trees train on the CPU; YDF uses every core)."""

    name = "ydf"
    is_chief = True

    def describe(self) -> dict:
        return {"strategy": "ydf (CPU threads)", "devices": ["CPU"], "num_workers": 1, "task": None,
                "mixed_precision": False}


def _train_gbdt(spec: F.TrainingSpec, train_path: Path, carve, parameters: dict, seed: int, extra: dict) -> dict:
    """Gradient-boosted trees on the train part, early-stopped on the validation part; the export is gated."""
    import ydf

    from . import gbdt, tree_export
    from . import input as data_input

    started = time.time()
    train_part = gbdt.read_part(train_path, spec, carve, data_input.TRAIN_PART)
    validation_part = gbdt.read_part(train_path, spec, carve, data_input.VALIDATION_PART)
    model = gbdt.fit(spec, train_part, validation_part, parameters, seed)
    validation_prediction = gbdt.predict(model, validation_part[0], spec)
    # The validation metrics (and per-row losses, for `auto`) are the early-stopped model's: out of sample.
    metrics = {VALIDATION: gbdt.metrics_of(validation_prediction, validation_part[1], spec)}
    validation_losses = row_losses(validation_prediction, validation_part[1], spec)
    refit: dict = {}
    validation_loss = model.validation_loss()  # the early-stopped model's (a refit model has none)
    if len(train_part[1]) + len(validation_part[1]) <= gbdt.REFIT_MAX_ROWS:
        early_stopped = int(model.num_trees())
        model, iterations = gbdt.refit(spec, model, train_part, validation_part, parameters, seed)
        refit = {"refit_on_all_rows": True, "refit_rows": len(train_part[1]) + len(validation_part[1]),
                 "refit_iterations": iterations, "early_stopped_trees": early_stopped}
    metrics = {types.TRAIN: gbdt.metrics_of(gbdt.predict(model, train_part[0], spec), train_part[1], spec), **metrics}
    log.info("GBDT metrics: %s", json.dumps(metrics))
    holdout = tree_export.holdout(validation_part[0], spec, seed=seed)
    exported: dict = {}

    def export(scratch: Path) -> None:
        exported.update(tree_export.export_saved_model(model, spec, contract.version_dir(scratch)))
        exported["gate"] = tree_export.check_export(scratch, model, spec, holdout)
        log.info("GBDT export gate passed: %s", json.dumps(exported["gate"]))
        return exported

    hyperparameters = {**gbdt.described_hyperparameters(model, parameters, seed), **refit, **extra,
                       "validation_loss": None if validation_loss is None else float(validation_loss)}
    return {
        "model": model, "metrics": metrics, "hyperparameters": hyperparameters, "placement": _CpuPlacement(),
        "export": export, "ydf_version": ydf.__version__, "validation_losses": validation_losses,
        "training": {"trees": int(model.num_trees()), "gbdt_seconds": round(time.time() - started, 1),
                     "epochs_trained": None, "best_epoch": None, "resumed_from_epoch": 0},
    }


def _train_dnn(spec: F.TrainingSpec, train_path: Path, carve, parts, state: _State, checkpoint_dir, tensorboard_dir,
               *, seed, hidden_units, dropout, learning_rate, batch_size, epochs, patience, shuffle_buffer, strategy,
               mixed_precision, devices, verbose, hyperparameters) -> dict:
    """The Keras network (the ``dnn`` family): fit with checkpoints and early stopping, then its metrics."""
    from . import distribution

    started = time.time()
    placement = distribution.select_strategy(strategy, mixed_precision, list(devices) if devices else None)

    import keras
    import tensorflow as tf

    from . import input as data_input
    from . import model as model_lib

    keras.utils.set_random_seed(seed)
    distribution_strategy = placement.strategy
    with distribution_strategy.scope():
        model = model_lib.build_model(spec, hidden_units, dropout, learning_rate)
        model(model_lib.sample_inputs(spec))
        model.optimizer.build(model.trainable_variables)

    if placement.name == "MultiWorkerMirroredStrategy":
        model.expand_step_logs = True  # see TabularModel.train_step

    resumed_from = 0
    if checkpoint_dir is not None:
        latest = tf.train.latest_checkpoint(os.fspath(checkpoint_dir))
        if latest and state.epoch:
            tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(latest).assert_existing_objects_matched()
            resumed_from = state.epoch
            log.info("resuming from checkpoint %s after epoch %d (best validation loss %.5g at epoch %d)",
                     latest, state.epoch, state.best_loss, state.best_epoch)

    if batch_size == 0:
        batch_size = auto_batch_size(parts[data_input.TRAIN_PART]["rows"] - parts[data_input.TRAIN_PART]["missing_label"])
        log.info("batch size %d, chosen from the number of training rows", batch_size)
    train_part = {"carve": carve, "part": data_input.TRAIN_PART}
    validation_part = {"carve": carve, "part": data_input.VALIDATION_PART}
    if placement.name != "MultiWorkerMirroredStrategy":
        # One worker: Keras splits each global batch over the local replicas (experimental_distribute_dataset).
        # Several workers: every worker reads its own shard of the rows (below).
        train_data = data_input.make_dataset(
            train_path, spec, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, **train_part
        )
        validation_data = data_input.make_dataset(train_path, spec, batch_size, **validation_part)
    else:
        train_data = distribution_strategy.distribute_datasets_from_function(
            data_input.dataset_fn(train_path, spec, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, **train_part)
        )
        validation_data = distribution_strategy.distribute_datasets_from_function(
            data_input.dataset_fn(train_path, spec, batch_size, **validation_part)
        )

    checkpointer = _make_checkpoint_callback(model, state, checkpoint_dir, patience, placement.is_chief)
    callbacks = [checkpointer]
    if tensorboard_dir:
        log_dir = tensorboard_dir if placement.is_chief else tempfile.mkdtemp(prefix="kfpc-worker-tb-")
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir), histogram_freq=0))
    if state.stopped or state.epoch >= epochs:
        log.info("the checkpoint says training already finished (epoch %d); exporting", state.epoch)
    else:
        with warnings.catch_warnings():
            # The streamed dataset has no known length: Keras ends each epoch when it runs out, as intended.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(
                train_data, validation_data=validation_data, epochs=epochs, initial_epoch=state.epoch,
                callbacks=callbacks, verbose=verbose, shuffle=False,
            )
    checkpointer.restore_best()
    checkpointer.cleanup()

    validation_losses: list[np.ndarray] = []
    metrics = {
        types.TRAIN: evaluate_split(model, spec, train_path, **train_part),
        VALIDATION: evaluate_split(model, spec, train_path, losses=validation_losses, **validation_part),
    }
    log.info("final metrics (best epoch %d): %s", state.best_epoch, json.dumps(metrics))
    hyperparameters = {
        **hyperparameters, "numeric_encoding": {f.name: f.numeric_encoding() for f in spec.features
                                                if f.kind == F.NUMERIC},
        "hidden_units": hidden_units, "dropout": dropout, "learning_rate": learning_rate, "batch_size": batch_size,
        "epochs": epochs, "patience": patience, "seed": seed, "shuffle_buffer": shuffle_buffer,
    }
    return {
        "model": model, "metrics": metrics, "hyperparameters": hyperparameters, "placement": placement,
        "export": lambda scratch: model_lib.export_saved_model(model, spec, contract.version_dir(scratch)),
        "resumed_from": resumed_from, "validation_losses": np.concatenate(validation_losses),
        "training": {"epochs_trained": state.epoch, "best_epoch": state.best_epoch, "resumed_from_epoch": resumed_from,
                     "dnn_seconds": round(time.time() - started, 1)},
    }
