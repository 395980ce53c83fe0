"""Find the model version folder and load the predictor the trainer defines.

The loader itself belongs to training (``kfpc.components.train.signature.load_predictor``): serving
only resolves *which* folder to load, because in the cluster KServe's storage initializer copies the
whole ``<model>`` artifact into ``/mnt/models`` and users point ``--model_dir`` either at it or at the
version folder inside it. The most reported KServe failure is a model without its ``1/`` folder, so
the error for that case lists what the folder does hold.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kfpc.components import types


class ModelLayoutError(ValueError):
    """The model folder does not hold a SavedModel in the layout KServe and kfpc expect."""


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


def load(location: ModelLocation) -> Any:
    """Load a located model with training's ``load_predictor`` (the one loader of THE MODEL CONTRACT).

    ``load_predictor`` reads ``<dir>/1`` and ``<dir>/model_card.json``. For any other layout (a higher
    version, or ``--model_dir`` at the version folder) it is pointed at a scratch folder of symlinks
    that presents the chosen version as ``1/`` beside the card, so the same loader runs either way.

    Args:
        location: from :func:`locate`.
    Returns:
        the Predictor: ``.card`` (dict) and ``.predict(columns) -> dict[str, ndarray]``.
    Raises:
        ModelLayoutError: no model card.
    """
    from kfpc.components.train.signature import load_predictor

    if location.card_path is None:
        raise ModelLayoutError(f"--model_dir {location.root}: no {types.MODEL_CARD_FILE} beside or inside "
                               f"{location.version_dir}; a kfpc Model artifact has both")
    canonical = location.card_path.parent
    if (canonical / types.MODEL_VERSION).resolve() == location.version_dir.resolve():
        return load_predictor(canonical)
    staging = Path(tempfile.mkdtemp(prefix="kfpc-model-"))
    # Kept for the life of the process: assets (vocabulary files) are the model's, read through these links.
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    (staging / types.MODEL_VERSION).symlink_to(location.version_dir.resolve(), target_is_directory=True)
    (staging / types.MODEL_CARD_FILE).symlink_to(location.card_path.resolve())
    return load_predictor(staging)
