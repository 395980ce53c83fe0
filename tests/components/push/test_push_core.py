"""push_kserve end to end: dry_run, local (real model server on a real trained model), cluster (fakes)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from kfpc.components.push import core, kube, manifest, rollout, storage


def test_dry_run_writes_manifest_and_requests_but_nothing_else(fake_model, tmp_path, assert_valid_isvc):
    root = tmp_path / "serving"
    out = tmp_path / "out"
    result = core.push_kserve(fake_model, serving_root=str(root), name="penguins", namespace="ml",
                              mode="dry_run", gpu=1, service_account="kfpc-runner", output_dir=out)
    assert not root.exists()  # a dry run copies nothing
    assert result.model_uri == str(root / "penguins" / "v1") and result.previous_model_uri == ""
    assert result.endpoint_url == "http://penguins.ml.svc.cluster.local"
    written = yaml.safe_load((out / core.MANIFEST_FILE).read_text())
    assert written == result.manifest
    assert_valid_isvc(written)
    requests = json.loads((out / core.REQUESTS_FILE).read_text())
    assert [(q["method"], q["path"]) for q in requests][:2] == [
        ("GET", "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/penguins"),
        ("POST", "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices"),
    ]
    assert requests[1]["body"] == written
    summary = json.loads((out / core.RESULT_FILE).read_text())
    assert summary[core.MODEL_URI] == result.model_uri


def test_the_alert_rules_and_dashboard_are_written_beside_the_manifest(fake_model, tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from kfpc.components.monitor import core as monitor

    stats = statistics_pb2.DatasetFeatureStatistics(num_examples=10)
    feature = stats.features.add(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    feature.path.step.append("x")
    feature.num_stats.mean, feature.num_stats.std_dev = 1.0, 2.0
    config = tmp_path / "monitoring"
    monitor.write_monitoring_config(config, {"features": [{"name": "x", "dtype": "float64"}]}, stats,
                                    model_name="penguins", namespace="ml")
    out = tmp_path / "out"
    core.push_kserve(fake_model, serving_root=str(tmp_path / "serving"), name="penguins", namespace="ml",
                     output_dir=out, monitoring_dir=config)
    for name in core.MONITORING_FILES:
        assert (out / name).read_bytes() == (config / name).read_bytes()
    rule = yaml.safe_load((out / "prometheusrule.yaml").read_text())
    assert (rule["kind"], rule["metadata"]["namespace"]) == ("PrometheusRule", "ml")
    assert (out / core.MANIFEST_FILE).exists()

    # a folder that is not monitoring_config's output is refused before anything is written
    (config / "dashboard.json").unlink()
    with pytest.raises(core.PushError, match=r"dashboard.json is missing"):
        core.push_kserve(fake_model, serving_root=str(tmp_path / "serving"), name="penguins",
                         output_dir=tmp_path / "out2", monitoring_dir=config)
    assert not (tmp_path / "out2").exists()


def test_dry_run_against_a_live_service_shows_the_canary_patch(fake_model, tmp_path, assert_valid_isvc):
    storage.push_model(fake_model, str(tmp_path / "serving"), "penguins")  # v1 exists already
    live = manifest.render(manifest.ServingOptions(name="penguins", deployment_mode="Knative"), "gs://old/v9")
    live["metadata"].update(resourceVersion="41", generation=5)
    result = core.push_kserve(fake_model, serving_root=str(tmp_path / "serving"), name="penguins",
                              deployment_mode="Knative", canary_traffic_percent=10, promote=True,
                              existing_manifest=live)
    assert result.model_uri.endswith("/penguins/v2")
    assert result.previous_model_uri == "gs://old/v9"  # the served model, not the newest folder
    patches = [q for q in result.requests if q["method"] == "PATCH"]
    assert patches[0]["body"]["metadata"]["resourceVersion"] == "41"
    assert patches[0]["body"]["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patches[1]["body"]["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert result.action == "promoted"


@pytest.mark.parametrize("blessed", [False, "false", "False"])
def test_not_blessed_is_refused_and_nothing_is_written(fake_model, tmp_path, blessed):
    with pytest.raises(core.NotBlessedError, match="refusing to push"):
        core.push_kserve(fake_model, serving_root=str(tmp_path / "s"), name="penguins", mode="local",
                         blessed=blessed, output_dir=tmp_path / "out")
    assert not (tmp_path / "s").exists() and not (tmp_path / "out").exists()


def test_force_pushes_an_unblessed_model_and_bad_blessings_are_errors(fake_model, tmp_path):
    result = core.push_kserve(fake_model, serving_root=str(tmp_path / "s"), name="penguins", blessed=False,
                              force=True)
    assert result.model_uri.endswith("/v1")
    with pytest.raises(core.PushError, match="expected a boolean blessing, got 'maybe'"):
        core.push_kserve(fake_model, serving_root=str(tmp_path / "s"), name="penguins", blessed="maybe")


@pytest.mark.parametrize("kwargs,error,match", [
    ({"mode": "staging"}, core.PushError, "mode must be one of"),
    ({"mode": "cluster"}, core.PushError, "gs:// or s3://"),
    ({"name": "Penguins_v2"}, manifest.ManifestError, "DNS-1035"),
    ({"canary_traffic_percent": 120}, manifest.ManifestError, "1..99"),
    ({"predictor": "tensorflow", "protocol": "v2"}, manifest.ManifestError, "v1 only"),
])
def test_bad_arguments_fail_before_anything_is_copied(fake_model, tmp_path, kwargs, error, match):
    args = {"serving_root": str(tmp_path / "s"), "name": "penguins", **kwargs}
    with pytest.raises(error, match=match):
        core.push_kserve(fake_model, **args)
    assert not (tmp_path / "s").exists()


def test_cluster_push_to_gcs_and_kserve(fake_model, tmp_path, fake_kube, assert_valid_isvc):
    from fake_gcs import FakeGCS

    client = kube.IsvcClient.for_host(fake_kube.url)
    with FakeGCS() as gcs:
        args = dict(serving_root="gs://models/serving", name="penguins", namespace="ml", mode="cluster",
                    kube_client=client, storage_client=gcs.client(), timeout_s=1, poll_s=0.02)
        first = core.push_kserve(fake_model, **args, output_dir=tmp_path / "o1")
        assert (first.action, first.model_uri, first.previous_model_uri) == (
            "created", "gs://models/serving/penguins/v1", "")
        second = core.push_kserve(fake_model, **args, canary_traffic_percent=25)
        assert (second.action, second.previous_model_uri, second.traffic_percent) == (
            "canary", "gs://models/serving/penguins/v1", 25)
        live = fake_kube.get("ml", "penguins")
        assert manifest.storage_uri_of(live["spec"]["canary"][0]["predictor"]) == second.model_uri
        assert_valid_isvc({k: v for k, v in live.items() if k != "status"})

        fake_kube.readiness = lambda obj: "pending" if "v3" in json.dumps(obj["spec"]) else "ready"
        with pytest.raises(rollout.RolloutError, match="previous spec restored"):
            core.push_kserve(fake_model, **args, output_dir=tmp_path / "o3")
        assert not (tmp_path / "o3").exists()
        assert fake_kube.get("ml", "penguins")["spec"] == live["spec"]
        assert "serving/penguins/v3/1/saved_model.pb" in gcs.names("models")  # immutable, just unused


def test_local_mode_serves_the_pushed_copy_and_answers_v1_and_v2(trained_model, tmp_path):
    model_dir, data_dir = trained_model
    root = tmp_path / "serving"
    first = core.push_kserve(model_dir, serving_root=str(root), name="penguins", mode="local",
                             data_dir=data_dir, output_dir=tmp_path / "out")
    assert first.action == "smoke-tested" and first.model_uri == str(root / "penguins" / "v1")
    v1, v2 = first.smoke
    assert (v1["protocol"], v1["status"], v2["protocol"], v2["status"]) == ("v1", 200, "v2", 200)
    card = json.loads((model_dir / "model_card.json").read_text())
    assert len(v1["response"]["predictions"]) == 2
    assert all(p["classes"] in card["classes"] for p in v1["response"]["predictions"])
    assert {o["name"] for o in v2["response"]["outputs"]} >= {"probabilities", "class_ids", "classes"}
    assert json.loads((tmp_path / "out" / core.SMOKE_FILE).read_text()) == first.smoke

    second = core.push_kserve(model_dir, serving_root=str(root), name="penguins", mode="local")
    assert second.previous_model_uri == first.model_uri  # the baseline for the next evaluation
    assert second.smoke[0]["request"]["instances"][1]["island"] == ""  # synthetic rows exercise missing values


def test_local_mode_removes_a_copy_that_does_not_load(trained_model, tmp_path):
    model_dir, _ = trained_model
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    root = tmp_path / "serving"
    with pytest.raises(core.SmokeTestError, match="did not load"):
        core.push_kserve(broken, serving_root=str(root), name="penguins", mode="local",
                         server_startup_timeout=120, output_dir=tmp_path / "out")
    assert storage.latest_version(str(root), "penguins") == ""
    assert not (root / "penguins" / "v1").exists() and not (tmp_path / "out").exists()


def test_the_core_imports_neither_tensorflow_nor_kfp_nor_kubernetes():
    import subprocess
    import sys

    code = ("import sys, kfpc.components.push.core, kfpc.components.push.storage, kfpc.components.push.manifest; "
            "print(sorted(m for m in ('tensorflow', 'kfp', 'kubernetes', 'kserve') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_cluster_mode_without_credentials_fails_before_copying(fake_model, gcs, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(kube.KubeError, match="no Kubernetes credentials"):
        core.push_kserve(fake_model, serving_root="gs://models/serving", name="penguins", mode="cluster",
                         storage_client=gcs.client())
    assert gcs.uploads == []


def test_smoke_rows_send_dates_and_times_as_iso_text_and_nan_as_null(tmp_path):
    """A date column of the eval split must reach the smoke request as JSON (it failed to serialize)."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    split = tmp_path / "data" / "Split-eval"
    split.mkdir(parents=True)
    pq.write_table(pa.table({
        "day": pa.array([datetime.date(2013, 1, 1), None], pa.date32()),
        "at": pa.array([datetime.datetime(2013, 1, 1, 5, 17), datetime.datetime(2013, 1, 2)], pa.timestamp("s")),
        "x": [float("nan"), 2.5], "ok": [True, False],
    }), split / "data.parquet")
    card = {"features": [{"name": n, "dtype": "string" if n in ("day", "at") else "float64"}
                         for n in ("day", "at", "x", "ok")]}
    rows = core.smoke_rows(card, tmp_path / "data")
    assert rows == [{"day": "2013-01-01", "at": "2013-01-01T05:17:00", "x": None, "ok": True},
                    {"day": None, "at": "2013-01-02T00:00:00", "x": 2.5, "ok": False}]
    json.dumps(rows)
