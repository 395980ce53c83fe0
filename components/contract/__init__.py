"""THE MODEL CONTRACT: what train writes and evaluate, push and the model server read.

A Model artifact is ``<model>/1/saved_model.pb`` (signature ``serving_default`` over the raw features)
with ``<model>/model_card.json`` beside ``1/`` (see components/README.md). This module is plain Python
without TensorFlow, so the deploy image (push) reads cards with it:

* :func:`read_card` / :func:`write_card`, :func:`card_file`, :func:`version_dir`: the card and the layout
  (from :mod:`kfpc.components.artifacts`);
* :func:`expected_outputs`: the signature outputs a card's task promises;
* :func:`locate`: the version folder and card of a model folder, as KServe hands it to the server;
* :func:`load_predictor`: the one SavedModel loader (imports TensorFlow when called);
* :mod:`.signature`: ``to_model_inputs`` (numpy/Arrow) turning raw columns into signature inputs;
* :mod:`.local_server`: ``LocalServer``, the model server in a subprocess (started by module name, so
  components never import ``kfpc.serving``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfpc.components import types
from kfpc.components.artifacts import ArtifactError, card_file, read_card, read_card_file, version_dir, write_card

__all__ = [
    "CLASSIFICATION_OUTPUTS", "ISO_DATETIME", "REGRESSION_OUTPUTS", "TASKS", "ModelLayoutError", "ModelLocation",
    "card_file", "expected_outputs", "load_predictor", "locate", "read_card", "read_card_file", "version_dir",
    "write_card",
]

TASKS = ("binary", "multiclass", "regression")
#: signature outputs by task: classification gives all three, regression one
CLASSIFICATION_OUTPUTS = ("probabilities", "class_ids", "classes")
REGRESSION_OUTPUTS = ("predictions",)
#: the ISO-8601 date or date-time text a ``datetime`` feature is fed as (the model and the server check it)
ISO_DATETIME = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
                r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?")


class ModelLayoutError(ArtifactError):
    """The model folder does not hold a SavedModel in the layout KServe and kfpc expect."""


def expected_outputs(card_or_task: Mapping[str, Any] | str) -> tuple[str, ...]:
    """The ``serving_default`` outputs a model of this card (or task name) returns.

    Raises:
        ArtifactError: the task is not one of :data:`TASKS`.
    """
    task = card_or_task if isinstance(card_or_task, str) else card_or_task.get(types.TASK)
    if task not in TASKS:
        raise ArtifactError(f"model card field '{types.TASK}' is {task!r}; expected one of {TASKS}")
    return REGRESSION_OUTPUTS if task == "regression" else CLASSIFICATION_OUTPUTS


@dataclasses.dataclass(frozen=True)
class ModelLocation:
    """Where a model's parts are: the folder given, the version folder chosen, the model card."""

    root: Path
    version_dir: Path
    version: str
    card_path: Path | None


def _is_saved_model(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() or (folder / "saved_model.pbtxt").is_file()


def locate(model_dir: str | os.PathLike) -> ModelLocation:
    """Resolve ``model_dir`` to its SavedModel version folder.

    In the cluster KServe's storage initializer copies the whole artifact into ``/mnt/models``, and users
    point the server either at it or at the version folder inside it; a model without its ``1/`` folder
    is the most reported KServe failure, so that error lists what the folder holds.

    Args:
        model_dir: the Model artifact folder (``<model>/1/saved_model.pb``; the highest numeric version
            wins) or a version folder itself (``<model>/1``).
    Returns:
        the ModelLocation; ``card_path`` is ``model_card.json`` beside the version folder or inside it.
    Raises:
        ModelLayoutError: no SavedModel found; the message lists the folder's contents.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelLayoutError(f"--model_dir {model_dir}: no such folder")
    if _is_saved_model(root):
        version_dir, version, card_dir = root, root.name, root.parent
        if not (card_dir / types.MODEL_CARD_FILE).is_file():
            card_dir = root
    else:
        versions = sorted(
            (int(child.name), child)
            for child in root.iterdir()
            if child.is_dir() and child.name.isdigit() and _is_saved_model(child)
        )
        if not versions:
            listing = sorted(child.name + ("/" if child.is_dir() else "") for child in root.iterdir())
            raise ModelLayoutError(
                f"--model_dir {model_dir}: no SavedModel found. Expected {model_dir}/saved_model.pb or a numeric "
                f"version folder such as {model_dir}/{types.MODEL_VERSION}/saved_model.pb (the KServe / TF Serving "
                f"layout); the folder holds {listing[:20]}"
            )
        version, version_dir = str(versions[-1][0]), versions[-1][1]
        card_dir = root
    card = card_dir / types.MODEL_CARD_FILE
    return ModelLocation(root=root, version_dir=version_dir, version=version, card_path=card if card.is_file() else None)


def load_predictor(model: str | os.PathLike | ModelLocation):
    """Load a model's SavedModel and card: the one loader (imports TensorFlow).

    Args:
        model: the Model artifact folder, its version folder, or a :class:`ModelLocation`.
    Returns:
        a :class:`~kfpc.components.contract.signature.Predictor`: ``.card`` and ``.predict(columns)``.
    Raises:
        ModelLayoutError: no SavedModel or no model card.
        ArtifactError: a card that is not valid.
    """
    from kfpc.components.contract.signature import Predictor

    location = model if isinstance(model, ModelLocation) else locate(model)
    if location.card_path is None:
        raise ModelLayoutError(f"--model_dir {location.root}: no {types.MODEL_CARD_FILE} beside or inside "
                               f"{location.version_dir}; a kfpc Model artifact has both")
    return Predictor(location)
