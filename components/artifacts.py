"""The one place that knows where each artifact keeps its files: readers and writers for every layout.

Layouts follow TFX where TFX has one, so TFX and TFDV tools open our artifacts (file names in
:mod:`kfpc.components.types`):

* Dataset:    ``<uri>/Split-<split>/data.parquet`` (one Parquet file per split)
* Statistics: ``<uri>/Split-<split>/FeatureStats.pb`` (binary ``DatasetFeatureStatisticsList``)
* Schema:     ``<uri>/schema.pbtxt`` (text ``tensorflow_metadata`` ``Schema``)
* Anomalies:  ``<uri>/anomalies.pbtxt`` (text ``tensorflow_metadata`` ``Anomalies``)
* Model:      ``<uri>/1/saved_model.pb`` (+ ``variables/``) and ``<uri>/model_card.json`` beside ``1/``
* Blessing:   ``<uri>/blessing.json`` + ``evaluation.json`` + a ``BLESSED``/``NOT_BLESSED`` marker; the
  verdict is also the artifact's metadata ``blessed``

Plain Python: no kfp, no TensorFlow. The ``tensorflow_metadata`` protos are imported only by the readers
that return them, so the deploy image (which reads model cards only) does not need that package.
Every error is an :class:`ArtifactError` (a ``ValueError``) naming the file or field and the value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import types
from ._fs import atomic_dir, local_path

BLESSING_FILE = "blessing.json"
EVALUATION_FILE = "evaluation.json"
BLESSED_MARKER = "BLESSED"
NOT_BLESSED_MARKER = "NOT_BLESSED"


class ArtifactError(ValueError):
    """An artifact is missing a file, or a file or field does not hold what its layout promises."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The file an artifact layout promises is absent (also a ``FileNotFoundError``)."""


class ArtifactFormatError(ArtifactError):
    """The file exists but does not parse as its layout's format, or a field has a wrong value."""


def _root(uri: str | os.PathLike) -> Path:
    return Path(local_path(os.fspath(uri)))


def _listing(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(child.name + ("/" if child.is_dir() else "") for child in folder.iterdir())[:20]


def _splits(root: Path, file_name: str) -> list[str]:
    prefix = types.SPLIT_DIR.format(split="")
    if not root.is_dir():
        return []
    return sorted(p.name[len(prefix):] for p in root.iterdir()
                  if p.is_dir() and p.name.startswith(prefix) and (p / file_name).is_file())


def _split_path(root: str | os.PathLike, split: str, file_name: str, what: str, must_exist: bool) -> Path:
    folder = _root(root)
    path = folder / types.SPLIT_DIR.format(split=split) / file_name
    if must_exist and not path.is_file():
        available = _splits(folder, file_name)
        raise ArtifactNotFoundError(f"{root}: the {what} has no split {split!r} (expected file {path}; "
                                    f"splits present: {available})")
    return path


# ------------------------------------------------------------------------------------------ Dataset


def split_file(dataset_dir: str | os.PathLike, split: str, *, must_exist: bool = True) -> Path:
    """The Parquet file of one split of a Dataset artifact (``Split-<split>/data.parquet``).

    Args:
        dataset_dir: the Dataset folder (or ``file://`` / ``gs://`` URI).
        split: the split name.
        must_exist: raise when the file is absent (False: the path a writer should create).
    Raises:
        ArtifactNotFoundError: the split is absent; the message lists the splits present.
    """
    return _split_path(dataset_dir, split, types.DATA_FILE, "Dataset", must_exist)


def dataset_splits(dataset_dir: str | os.PathLike) -> list[str]:
    """Names of the splits of a Dataset folder that hold a data file, sorted (empty if not a folder)."""
    return _splits(_root(dataset_dir), types.DATA_FILE)


def read_split(dataset_dir: str | os.PathLike, split: str, columns: list[str] | None = None):
    """One split of a Dataset artifact as an Arrow table.

    Raises:
        ArtifactNotFoundError: no such split.
        ArtifactFormatError: the file is not readable Parquet, or a requested column is absent.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = split_file(dataset_dir, split)
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise ArtifactFormatError(f"{path}: not a readable Parquet file with columns {columns} ({err})") from err


# --------------------------------------------------------------------------------------- Statistics


def statistics_file(statistics_dir: str | os.PathLike, split: str, *, must_exist: bool = True) -> Path:
    """``Split-<split>/FeatureStats.pb`` of a Statistics artifact (see :func:`split_file`)."""
    return _split_path(statistics_dir, split, types.STATS_FILE, "Statistics artifact", must_exist)


def statistics_splits(statistics_dir: str | os.PathLike) -> list[str]:
    """Names of the splits of a Statistics folder, sorted (empty for a single file or a missing folder)."""
    return _splits(_root(statistics_dir), types.STATS_FILE)


def read_statistics(statistics_dir: str | os.PathLike, split: str | None = None):
    """A Statistics artifact's split (or a ``FeatureStats.pb`` file given directly).

    Args:
        statistics_dir: the Statistics folder, or the path of a ``FeatureStats.pb``.
        split: the split to read (ignored when ``statistics_dir`` is a file).
    Returns:
        The ``DatasetFeatureStatisticsList``.
    Raises:
        ArtifactNotFoundError: no such file or split.
        ArtifactFormatError: not a statistics proto, no dataset in it, or a folder without a split name.
    """
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = _root(statistics_dir)
    if path.is_dir():
        if split is None:
            raise ArtifactFormatError(f"{statistics_dir}: a Statistics folder needs a split name "
                                      f"(splits present: {statistics_splits(path)})")
        path = statistics_file(path, split)
    elif not path.is_file():
        raise ArtifactNotFoundError(f"{statistics_dir}: no statistics file")
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    try:
        stats.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf raises DecodeError, a bare Exception subclass
        raise ArtifactFormatError(f"{path}: not a binary DatasetFeatureStatisticsList ({err})") from err
    if not stats.datasets:
        raise ArtifactFormatError(f"{path}: holds no dataset statistics (datasets is empty)")
    return stats


def write_statistics(by_split: Mapping[str, Any], output_dir: str | os.PathLike) -> None:
    """Write one ``DatasetFeatureStatisticsList`` per split into a new Statistics folder, atomically.

    Args:
        by_split: split name -> ``DatasetFeatureStatisticsList``.
        output_dir: the artifact folder (absent or empty).
    """
    with atomic_dir(output_dir) as scratch:
        for split, stats_list in by_split.items():
            path = statistics_file(scratch, split, must_exist=False)
            path.parent.mkdir()
            path.write_bytes(stats_list.SerializeToString())


# ------------------------------------------------------------------------------------------- Schema


def _text_proto_file(path_or_dir: str | os.PathLike, file_name: str, what: str) -> Path:
    path = _root(path_or_dir)
    if path.is_dir():
        path = path / file_name
    if not path.is_file():
        raise ArtifactNotFoundError(f"{path}: no {what} file (the {what} artifact holds {file_name}; "
                                    f"the folder holds {_listing(path.parent)})")
    return path


def _parse_text_proto(path: Path, message, what: str):
    from google.protobuf import text_format

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ArtifactFormatError(f"{path}: not UTF-8 text ({err})") from err
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        raise ArtifactFormatError(f"{path}: not a tensorflow_metadata {what} in text format: {err}") from err
    return message


def schema_file(path_or_dir: str | os.PathLike) -> Path:
    """``schema.pbtxt`` of a Schema folder (or the file itself). Raises ArtifactNotFoundError when absent."""
    return _text_proto_file(path_or_dir, types.SCHEMA_FILE, "Schema")


def read_schema(path_or_dir: str | os.PathLike):
    """A text ``Schema`` (a ``schema.pbtxt`` file or a Schema folder holding one), checked for use.

    Raises:
        ArtifactNotFoundError: no schema file.
        ArtifactFormatError: not UTF-8, does not parse, or declares a feature twice / without a type /
            with an undefined string domain.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = schema_file(path_or_dir)
    schema = _parse_text_proto(path, schema_pb2.Schema(), "Schema")
    check_schema(schema, str(path))
    return schema


def check_schema(schema, source: str = "schema") -> None:
    """Reject schemas no step can use: duplicate features, missing types, undefined string domains.

    Raises:
        ArtifactFormatError: naming ``source`` and the feature.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    seen: set[str] = set()
    domains = {d.name for d in schema.string_domain}
    for feature in schema.feature:
        if feature.name in seen:
            raise ArtifactFormatError(f"{source}: feature {feature.name!r} is declared twice")
        seen.add(feature.name)
        retired = feature.deprecated or feature.lifecycle_stage in (schema_pb2.DEPRECATED, schema_pb2.DISABLED)
        if feature.type == schema_pb2.TYPE_UNKNOWN and not retired:
            raise ArtifactFormatError(f"{source}: feature {feature.name!r} has no type")
        if feature.HasField("domain") and feature.domain not in domains:
            raise ArtifactFormatError(f"{source}: feature {feature.name!r} refers to string_domain "
                                      f"{feature.domain!r}, which is not defined (defined: {sorted(domains)})")


def write_schema(schema, output_dir: str | os.PathLike) -> Path:
    """Write ``schema.pbtxt`` into a new Schema folder, atomically. Returns the file's path."""
    from google.protobuf import text_format

    with atomic_dir(output_dir) as scratch:
        (Path(scratch) / types.SCHEMA_FILE).write_text(text_format.MessageToString(schema))
    return Path(output_dir) / types.SCHEMA_FILE


# ---------------------------------------------------------------------------------------- Anomalies


def read_anomalies(path_or_dir: str | os.PathLike):
    """``anomalies.pbtxt`` of an Anomalies folder (or the file itself).

    Raises:
        ArtifactNotFoundError: no file. ArtifactFormatError: it does not parse.
    """
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    path = _text_proto_file(path_or_dir, types.ANOMALIES_FILE, "Anomalies")
    return _parse_text_proto(path, anomalies_pb2.Anomalies(), "Anomalies")


def write_anomalies(anomalies, output_dir: str | os.PathLike) -> Path:
    """Write ``anomalies.pbtxt`` into a new Anomalies folder, atomically. Returns the file's path."""
    from google.protobuf import text_format

    with atomic_dir(output_dir) as scratch:
        (Path(scratch) / types.ANOMALIES_FILE).write_text(text_format.MessageToString(anomalies))
    return Path(output_dir) / types.ANOMALIES_FILE


# -------------------------------------------------------------------------------------------- Model


def card_file(model_dir: str | os.PathLike) -> Path:
    """``model_card.json`` of a Model folder (beside ``1/``); the path whether or not it exists."""
    return _root(model_dir) / types.MODEL_CARD_FILE


def version_dir(model_dir: str | os.PathLike) -> Path:
    """``<model>/1``: the SavedModel folder train writes (KServe / TF Serving layout)."""
    return _root(model_dir) / types.MODEL_VERSION


def read_card_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a ``model_card.json`` file (a JSON object with ``task`` and ``features``).

    Raises:
        ArtifactNotFoundError: no file. ArtifactFormatError: not JSON, not an object, or missing fields.
    """
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactNotFoundError(f"{path}: no model card; a Model artifact holds {types.MODEL_CARD_FILE} "
                                    f"beside {types.MODEL_VERSION}/ (the folder holds {_listing(path.parent)})"
                                    ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactFormatError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(card, dict):
        raise ArtifactFormatError(f"{path}: expected a JSON object, got {type(card).__name__}")
    if card.get(types.TASK) not in ("binary", "multiclass", "regression"):
        raise ArtifactFormatError(f"{path}: field '{types.TASK}' is {card.get(types.TASK)!r}; expected "
                                  f"'binary', 'multiclass' or 'regression'")
    features = card.get(types.FEATURES)
    if not isinstance(features, list) or not all(isinstance(f, dict) and "name" in f for f in features):
        raise ArtifactFormatError(f"{path}: field '{types.FEATURES}' must be a list of objects with a 'name', "
                                  f"got {str(features)[:200]}")
    return card


def read_card(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``model_card.json`` of a Model folder, without TensorFlow (see :func:`read_card_file`)."""
    return read_card_file(card_file(model_dir))


def write_card(card: Mapping[str, Any], model_dir: str | os.PathLike) -> Path:
    """Write ``model_card.json`` into a Model folder being built (e.g. the scratch folder of ``atomic_dir``)."""
    path = card_file(model_dir)
    path.write_text(json.dumps(dict(card), indent=2, sort_keys=False))
    return path


# ----------------------------------------------------------------------------------------- Blessing


def write_blessing(output_dir: str | os.PathLike, blessing: Mapping[str, Any], evaluation: Mapping[str, Any],
                   extra_files: Mapping[str, str] | None = None) -> None:
    """Write a Blessing folder atomically: ``blessing.json``, ``evaluation.json``, the marker, extra files.

    Args:
        output_dir: the artifact folder (absent or empty).
        blessing: JSON-safe verdict; ``blessing["blessed"]`` picks the marker.
        evaluation: JSON-safe evaluation details.
        extra_files: more text files by name (e.g. the HTML report).
    """
    with atomic_dir(output_dir) as scratch:
        (scratch / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=1))
        (scratch / BLESSING_FILE).write_text(json.dumps(blessing, indent=1))
        (scratch / (BLESSED_MARKER if blessing.get(types.BLESSED) else NOT_BLESSED_MARKER)).write_text("")
        for name, text in (extra_files or {}).items():
            (scratch / name).write_text(text)


def read_blessing(output_dir: str | os.PathLike) -> dict[str, Any]:
    """``{"blessing": ..., "evaluation": ...}`` of a Blessing folder.

    Raises:
        ArtifactNotFoundError: a file is absent. ArtifactFormatError: not JSON.
    """
    folder = _root(output_dir)
    out = {}
    for key, name in (("blessing", BLESSING_FILE), ("evaluation", EVALUATION_FILE)):
        path = folder / name
        try:
            out[key] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"{path}: no {name}; the Blessing folder holds {_listing(folder)}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArtifactFormatError(f"{path}: not valid JSON ({err})") from None
    return out


def blessing_verdict(metadata: Mapping[str, Any] | None, fallback: Any = True, source: str = "blessing") -> bool:
    """The verdict in a Blessing artifact's metadata (``blessed``), or ``fallback`` when there is no artifact.

    Args:
        metadata: the artifact's metadata; None when the pipeline passes no Blessing.
        fallback: the verdict without an artifact (a plain ``blessed`` parameter).
        source: the artifact's URI, for messages.
    Returns:
        True or False (``"true"``/``"false"`` strings from metadata are accepted).
    Raises:
        ArtifactFormatError: the metadata has no ``blessed`` key, or its value (or ``fallback``) is not a boolean.
    """
    if metadata is None:
        value, where = fallback, "blessed"
    else:
        if types.BLESSED not in metadata:
            raise ArtifactFormatError(f"{source}: the Blessing artifact's metadata has no '{types.BLESSED}' key "
                                      f"(keys: {sorted(metadata)})")
        value, where = metadata[types.BLESSED], f"{source} metadata '{types.BLESSED}'"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ArtifactFormatError(f"{where}: expected a boolean blessing, got {value!r}")
    return value
