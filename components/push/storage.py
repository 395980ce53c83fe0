"""Copy a model to a new versioned folder under a serving root, never overwriting an existing version.

Layout: ``<serving_root>/<name>/v<N>/`` holding the model folder as it is (``1/saved_model.pb``,
``variables/``, ``model_card.json``) plus ``_kfpc_push.json`` (where it came from, when, a content digest).

A version is claimed before anything is written and every write refuses to replace an existing object:
``os.mkdir`` locally, ``if_generation_match=0`` on Cloud Storage, ``IfNoneMatch="*"`` on S3. Two pushes
racing for the same number therefore never mix files; the loser takes the next number. ``saved_model.pb``
is written last, so a version counts as complete (and is considered by :func:`latest_version`) only once
everything else is in place.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

PUSH_RECORD = "_kfpc_push.json"
_VERSION_DIR = re.compile(r"^v(\d+)$")
_MAX_CLAIM_ATTEMPTS = 20


class StorageError(ValueError):
    """The model or the serving root cannot be used; the message names the path and the problem."""


@dataclasses.dataclass(frozen=True)
class PushedVersion:
    """One pushed model version.

    Attributes:
        uri: the version folder's URI (what KServe's ``storageUri`` points at).
        version: ``v<N>``.
        previous_uri: the newest complete version before this push ("" when none).
        digest: SHA-256 over the model's relative paths and contents.
    """

    uri: str
    version: str
    previous_uri: str
    digest: str


def check_model_dir(model_dir: str | os.PathLike) -> list[str]:
    """Check the KServe / TF Serving layout: a numeric version folder holding ``saved_model.pb``.

    Args:
        model_dir: the Model artifact folder.
    Returns:
        The numeric version folder names that hold a SavedModel, sorted numerically.
    Raises:
        StorageError: the folder is missing or has no ``<number>/saved_model.pb`` (KServe's TensorFlow runtime
            and TF Serving then fail at load time with an obscure "no versions found" error).
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise StorageError(f"{path}: the model folder does not exist")
    versions = sorted((p.name for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=int)
    good = [v for v in versions if (path / v / "saved_model.pb").is_file()]
    if not good:
        found = sorted(p.name for p in path.iterdir())[:20]
        hint = ""
        if (path / "saved_model.pb").is_file():
            hint = " (saved_model.pb is at the top level: move it into a version folder, e.g. 1/)"
        raise StorageError(
            f"{path}: no numeric version folder containing saved_model.pb (expected e.g. {path}/1/saved_model.pb); "
            f"found {found}{hint}. KServe's TensorFlow runtime and TF Serving cannot load this folder."
        )
    return good


def _files(model_dir: Path) -> list[Path]:
    # saved_model.pb last: a reader that sees it sees a complete version.
    files = [p for p in model_dir.rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: (p.name == "saved_model.pb", str(p.relative_to(model_dir))))


def model_digest(model_dir: str | os.PathLike) -> str:
    """SHA-256 over every file's relative path and bytes (stable across copies)."""
    root = Path(model_dir)
    digest = hashlib.sha256()
    for file in sorted(_files(root), key=lambda p: str(p.relative_to(root))):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _record(model_dir: Path, version: str, digest: str, source_uri: str) -> bytes:
    return json.dumps(
        {
            "version": version,
            "source_uri": source_uri or str(model_dir),
            "sha256": digest,
            "pushed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        indent=2,
    ).encode()


def _version_number(name: str) -> int | None:
    match = _VERSION_DIR.match(name)
    return int(match.group(1)) if match else None


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


class _Backend:
    """One storage system: list versions, claim one, write files that must not exist."""

    def versions(self, base: str) -> dict[int, bool]:
        """Version number -> complete (has a saved_model.pb in a numeric folder)."""
        raise NotImplementedError

    def claim(self, uri: str, record: bytes) -> bool:
        """Create ``uri/_kfpc_push.json`` only if absent; False when the version is taken."""
        raise NotImplementedError

    def upload(self, model_dir: Path, uri: str) -> None:
        raise NotImplementedError

    def remove(self, uri: str) -> None:
        """Delete a version this push created (used when its smoke test fails)."""
        raise NotImplementedError


class _LocalBackend(_Backend):
    def versions(self, base: str) -> dict[int, bool]:
        path = Path(base)
        if not path.is_dir():
            return {}
        out = {}
        for child in path.iterdir():
            number = _version_number(child.name)
            if number is not None and child.is_dir():
                out[number] = any(child.glob("[0-9]*/saved_model.pb"))
        return out

    def claim(self, uri: str, record: bytes) -> bool:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(uri)
        except FileExistsError:
            return False
        with open(os.path.join(uri, PUSH_RECORD), "xb") as handle:
            handle.write(record)
        return True

    def upload(self, model_dir: Path, uri: str) -> None:
        # Copy beside the claimed folder, then move each top-level entry in with rename (atomic per entry);
        # the version folder (saved_model.pb inside) is moved last.
        scratch = Path(tempfile.mkdtemp(prefix=f".{Path(uri).name}.partial-", dir=Path(uri).parent))
        try:
            shutil.copytree(model_dir, scratch / "m", dirs_exist_ok=False)
            entries = sorted((scratch / "m").iterdir(), key=lambda p: (p.is_dir() and p.name.isdigit(), p.name))
            for entry in entries:
                target = Path(uri) / entry.name
                if target.exists():
                    raise StorageError(f"{target}: already exists; refusing to overwrite a pushed version")
                os.rename(entry, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def remove(self, uri: str) -> None:
        shutil.rmtree(uri, ignore_errors=True)


class _GCSBackend(_Backend):
    def __init__(self, client=None):
        from google.cloud import storage  # the deploy image has it; imported only for gs:// roots

        self._client = client or storage.Client()
        self._storage = storage

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        bucket, _, prefix = uri[len("gs://"):].partition("/")
        if not bucket:
            raise StorageError(f"{uri}: no bucket in the gs:// URI")
        return bucket, prefix

    def versions(self, base: str) -> dict[int, bool]:
        bucket, prefix = self._split(base.rstrip("/") + "/")
        out: dict[int, bool] = {}
        for blob in self._client.list_blobs(bucket, prefix=prefix):
            rel = blob.name[len(prefix):].split("/")
            number = _version_number(rel[0])
            if number is None:
                continue
            complete = len(rel) == 3 and rel[1].isdigit() and rel[2] == "saved_model.pb"
            out[number] = out.get(number, False) or complete
        return out

    def claim(self, uri: str, record: bytes) -> bool:
        from google.api_core import exceptions

        bucket, prefix = self._split(uri)
        blob = self._client.bucket(bucket).blob(_join(prefix, PUSH_RECORD))
        try:
            blob.upload_from_string(record, content_type="application/json", if_generation_match=0)
        except exceptions.PreconditionFailed:
            return False
        return True

    def upload(self, model_dir: Path, uri: str) -> None:
        from google.api_core import exceptions

        bucket_name, prefix = self._split(uri)
        bucket = self._client.bucket(bucket_name)
        for file in _files(model_dir):
            name = _join(prefix, file.relative_to(model_dir).as_posix())
            try:
                bucket.blob(name).upload_from_filename(str(file), if_generation_match=0)
            except exceptions.PreconditionFailed as err:
                raise StorageError(f"gs://{bucket_name}/{name}: already exists; refusing to overwrite") from err

    def remove(self, uri: str) -> None:
        bucket, prefix = self._split(uri)
        for blob in self._client.list_blobs(bucket, prefix=prefix.rstrip("/") + "/"):
            blob.delete()


class _S3Backend(_Backend):
    def __init__(self, client=None):
        try:
            import boto3
        except ImportError as err:
            raise StorageError(
                "s3:// serving roots need the boto3 package, which is not installed in this image; "
                "pip install boto3 (or use a gs:// or local serving root)"
            ) from err
        self._client = client or boto3.client("s3")

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{uri}: no bucket in the s3:// URI")
        return bucket, prefix

    def versions(self, base: str) -> dict[int, bool]:
        bucket, prefix = self._split(base.rstrip("/") + "/")
        out: dict[int, bool] = {}
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                rel = item["Key"][len(prefix):].split("/")
                number = _version_number(rel[0])
                if number is not None:
                    complete = len(rel) == 3 and rel[1].isdigit() and rel[2] == "saved_model.pb"
                    out[number] = out.get(number, False) or complete
        return out

    def _put_new(self, bucket: str, key: str, body) -> bool:
        from botocore.exceptions import ClientError

        try:
            # Conditional write: S3 answers 412 if the key exists (supported since August 2024).
            self._client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    def claim(self, uri: str, record: bytes) -> bool:
        bucket, prefix = self._split(uri)
        return self._put_new(bucket, _join(prefix, PUSH_RECORD), record)

    def upload(self, model_dir: Path, uri: str) -> None:
        bucket, prefix = self._split(uri)
        for file in _files(model_dir):
            key = _join(prefix, file.relative_to(model_dir).as_posix())
            with open(file, "rb") as handle:
                if not self._put_new(bucket, key, handle):
                    raise StorageError(f"s3://{bucket}/{key}: already exists; refusing to overwrite")

    def remove(self, uri: str) -> None:
        bucket, prefix = self._split(uri)
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for item in page.get("Contents", []):
                self._client.delete_object(Bucket=bucket, Key=item["Key"])


def backend_for(root: str, client=None) -> _Backend:
    """The storage backend for a serving root URI (local path or ``file://``, ``gs://``, ``s3://``)."""
    if root.startswith("gs://"):
        return _GCSBackend(client)
    if root.startswith("s3://"):
        return _S3Backend(client)
    if "://" in root and not root.startswith("file://"):
        raise StorageError(f"serving_root {root!r}: unsupported scheme; use a local path, gs:// or s3://")
    return _LocalBackend()


def _normalize_root(root: str) -> str:
    if not root:
        raise StorageError("serving_root is empty")
    if root.startswith("file://"):
        root = root[len("file://"):]
    return root.rstrip("/") or "/"


def latest_version(serving_root: str, name: str, client=None) -> str:
    """URI of the newest complete version of ``name`` under ``serving_root`` ("" when none)."""
    root = _normalize_root(serving_root)
    base = _join(root, name)
    complete = [n for n, ok in backend_for(root, client).versions(base).items() if ok]
    return _join(base, f"v{max(complete)}") if complete else ""


def remove_version(uri: str, client=None) -> None:
    """Delete a pushed version folder (only for a version this run created and nothing serves)."""
    root = _normalize_root(uri)
    backend_for(root, client).remove(root)


def push_model(
    model_dir: str | os.PathLike, serving_root: str, name: str, *, source_uri: str = "", client=None
) -> PushedVersion:
    """Copy ``model_dir`` to ``<serving_root>/<name>/v<N>`` with N one above the highest existing version.

    Args:
        model_dir: local Model folder (``1/saved_model.pb``, ``model_card.json``).
        serving_root: local path, ``file://``, ``gs://bucket/prefix`` or ``s3://bucket/prefix``.
        name: the model's folder name under the root (the InferenceService name).
        source_uri: recorded in ``_kfpc_push.json`` (defaults to ``model_dir``).
        client: a ``google.cloud.storage.Client`` or boto3 S3 client to use instead of the default one.
    Returns:
        The new version and the previous newest one.
    Raises:
        StorageError: bad model layout, unsupported root, or no free version after repeated races.
    """
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    root = _normalize_root(serving_root)
    backend = backend_for(root, client)
    base = _join(root, name)
    digest = model_digest(model_dir)
    existing = backend.versions(base)
    complete = [n for n, ok in existing.items() if ok]
    previous = _join(base, f"v{max(complete)}") if complete else ""
    number = max(existing, default=0) + 1
    for _ in range(_MAX_CLAIM_ATTEMPTS):
        version = f"v{number}"
        uri = _join(base, version)
        if backend.claim(uri, _record(model_dir, version, digest, source_uri)):
            backend.upload(model_dir, uri)
            scheme = "file://" if serving_root.startswith("file://") else ""
            return PushedVersion(
                uri=scheme + uri, version=version, previous_uri=previous and scheme + previous, digest=digest
            )
        number += 1  # another push took this number meanwhile
    raise StorageError(f"{base}: could not claim a free version after {_MAX_CLAIM_ATTEMPTS} attempts")
