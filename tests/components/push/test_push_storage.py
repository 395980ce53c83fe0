"""Versioned model copies: local folders, Cloud Storage (the real client against a fake JSON API) and S3 (boto3
against moto's S3 server on 127.0.0.1)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from kfpc.components.push import storage


def test_local_versions_count_up_and_keep_the_model_intact(fake_model, tmp_path):
    root = tmp_path / "serving"
    first = storage.push_model(fake_model, str(root), "penguins")
    second = storage.push_model(fake_model, str(root), "penguins")
    assert (first.version, first.previous_uri) == ("v1", "")
    assert (second.version, second.previous_uri) == ("v2", str(root / "penguins" / "v1"))
    for version in (first, second):
        assert storage.model_digest(version.uri) != ""
        copied = {p.relative_to(version.uri).as_posix() for p in Path(version.uri).rglob("*")
                  if p.is_file()}
        original = {p.relative_to(fake_model).as_posix() for p in fake_model.rglob("*") if p.is_file()}
        assert copied == original | {storage.PUSH_RECORD}
        record = json.loads((Path(version.uri) / storage.PUSH_RECORD).read_text())
        assert record["sha256"] == storage.model_digest(fake_model) == version.digest
    assert storage.latest_version(str(root), "penguins") == second.uri


def test_an_existing_or_claimed_version_is_never_overwritten(fake_model, tmp_path):
    root = tmp_path / "serving"
    (root / "penguins" / "v3").mkdir(parents=True)  # a push in progress elsewhere (claimed, incomplete)
    (root / "penguins" / "v3" / "marker").write_text("theirs")
    pushed = storage.push_model(fake_model, str(root), "penguins")
    assert pushed.version == "v4" and pushed.previous_uri == ""  # v3 is not complete: not a baseline
    assert (root / "penguins" / "v3" / "marker").read_text() == "theirs"
    assert sorted(p.name for p in (root / "penguins" / "v3").iterdir()) == ["marker"]


def test_concurrent_pushes_get_distinct_versions(make_fake_model, tmp_path):
    root = str(tmp_path / "serving")
    models = [make_fake_model() for _ in range(4)]
    results, errors = [], []

    def push(model):
        try:
            results.append(storage.push_model(model, root, "penguins"))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=push, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r.version for r in results) == ["v1", "v2", "v3", "v4"]
    digests = {storage.model_digest(r.uri) for r in results}
    assert len(digests) == 4  # every version holds exactly one model's files, never a mix


@pytest.mark.parametrize("layout,match", [
    ("flat", "saved_model.pb is at the top level"),
    ("named", "no numeric version folder"),
    ("missing", "does not exist"),
])
def test_a_model_without_a_numeric_version_folder_is_refused(tmp_path, layout, match):
    model = tmp_path / "model"
    if layout == "flat":
        model.mkdir()
        (model / "saved_model.pb").write_bytes(b"x")
    elif layout == "named":
        (model / "latest").mkdir(parents=True)
        (model / "latest" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(storage.StorageError, match=match):
        storage.push_model(model, str(tmp_path / "serving"), "penguins")
    assert not (tmp_path / "serving").exists()


def test_unsupported_scheme_and_missing_boto3_are_clear(fake_model, monkeypatch):
    with pytest.raises(storage.StorageError, match="unsupported scheme"):
        storage.push_model(fake_model, "hdfs://x/y", "penguins")
    monkeypatch.setitem(sys.modules, "boto3", None)  # an image without boto3
    with pytest.raises(storage.StorageError, match="boto3"):
        storage.push_model(fake_model, "s3://bucket/models", "penguins")


def _s3_objects(client, bucket: str = "models") -> dict[str, bytes]:
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_s3_push_through_the_real_client(fake_model, s3):
    first = storage.push_model(fake_model, "s3://models/serving", "penguins", client=s3)
    second = storage.push_model(fake_model, "s3://models/serving/", "penguins", client=s3)
    assert first.uri == "s3://models/serving/penguins/v1"
    assert second.uri == "s3://models/serving/penguins/v2" and second.previous_uri == first.uri
    objects = _s3_objects(s3)
    files = {p.relative_to(fake_model).as_posix(): p.read_bytes() for p in fake_model.rglob("*") if p.is_file()}
    for version in ("v1", "v2"):
        copied = {key[len(f"serving/penguins/{version}/"):]: body for key, body in objects.items()
                  if key.startswith(f"serving/penguins/{version}/")}
        assert {k: v for k, v in copied.items() if k != "_kfpc_push.json"} == files
        assert json.loads(copied["_kfpc_push.json"])["sha256"] == storage.model_digest(fake_model)
    assert storage.latest_version("s3://models/serving", "penguins", client=s3) == second.uri


def test_s3_refuses_to_overwrite(fake_model, s3):
    # Another writer claimed v1 between our listing and our claim: S3's conditional write (412) moves us on.
    s3.put_object(Bucket="models", Key="serving/penguins/v1/_kfpc_push.json", Body=b"{}")
    pushed = storage.push_model(fake_model, "s3://models/serving", "penguins", client=s3)
    assert pushed.version == "v2"
    assert _s3_objects(s3)["serving/penguins/v1/_kfpc_push.json"] == b"{}"
    with pytest.raises(storage.StorageError, match="already exists; refusing to overwrite"):
        storage._S3Backend(s3).upload(fake_model, "s3://models/serving/penguins/v2")


def test_s3_remove_version_deletes_only_that_version(fake_model, s3):
    v1 = storage.push_model(fake_model, "s3://models/serving", "penguins", client=s3)
    v2 = storage.push_model(fake_model, "s3://models/serving", "penguins", client=s3)
    storage.remove_version(v2.uri, client=s3)
    assert not [key for key in _s3_objects(s3) if key.startswith("serving/penguins/v2/")]
    assert storage.latest_version("s3://models/serving", "penguins", client=s3) == v1.uri


def test_gcs_push_through_the_real_client(fake_model, gcs):
    client = gcs.client()
    first = storage.push_model(fake_model, "gs://models/serving", "penguins", client=client)
    second = storage.push_model(fake_model, "gs://models/serving/", "penguins", client=client)
    assert first.uri == "gs://models/serving/penguins/v1"
    assert second.uri == "gs://models/serving/penguins/v2" and second.previous_uri == first.uri
    names = gcs.names("models")
    assert "serving/penguins/v1/1/saved_model.pb" in names and "serving/penguins/v2/model_card.json" in names
    assert gcs.objects[("models", "serving/penguins/v1/1/saved_model.pb")] == (
        fake_model / "1" / "saved_model.pb").read_bytes()
    uploads = [(path, q) for method, path, q in gcs.requests if method == "POST"]
    assert uploads and all(q.get("ifGenerationMatch") == "0" for _, q in uploads)
    # the claim record first, saved_model.pb last: a half-uploaded version is never "complete"
    v1_uploads = [name for _, name in gcs.uploads if name.startswith("serving/penguins/v1/")]
    assert v1_uploads[0].endswith("_kfpc_push.json") and v1_uploads[-1].endswith("1/saved_model.pb")
    assert len(v1_uploads) == 1 + len([p for p in fake_model.rglob("*") if p.is_file()])
    assert storage.latest_version("gs://models/serving", "penguins", client=client) == second.uri


def test_gcs_refuses_to_overwrite(fake_model, gcs):
    client = gcs.client()
    # Another writer created v1's claim record between our listing and our claim: we must move on to v2.
    gcs.objects[("models", "serving/penguins/v1/_kfpc_push.json")] = b"{}"
    gcs.generations[("models", "serving/penguins/v1/_kfpc_push.json")] = 1
    pushed = storage.push_model(fake_model, "gs://models/serving", "penguins", client=client)
    assert pushed.version == "v2"
    assert gcs.objects[("models", "serving/penguins/v1/_kfpc_push.json")] == b"{}"
    with pytest.raises(storage.StorageError, match="already exists; refusing to overwrite"):
        storage._GCSBackend(client).upload(fake_model, "gs://models/serving/penguins/v2")


def test_remove_version_deletes_only_that_version(fake_model, gcs, tmp_path):
    client = gcs.client()
    v1 = storage.push_model(fake_model, "gs://models/serving", "penguins", client=client)
    v2 = storage.push_model(fake_model, "gs://models/serving", "penguins", client=client)
    storage.remove_version(v2.uri, client=client)
    assert not [n for n in gcs.names("models") if n.startswith("serving/penguins/v2/")]
    assert storage.latest_version("gs://models/serving", "penguins", client=client) == v1.uri
    local = storage.push_model(fake_model, str(tmp_path / "s"), "penguins")
    storage.remove_version(local.uri)
    assert storage.latest_version(str(tmp_path / "s"), "penguins") == ""
