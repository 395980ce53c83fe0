"""``kfpc submit``: dry-run requests checked field by field, and the real kfp.Client path against a fake server."""


import json

import pytest
import yaml

from kfpc.pipelines import cli, remote


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dry_run(capsys, *argv) -> dict:
    code, out, err = run_cli(capsys, *argv, "--dry-run")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dry_run"] is True
    return doc


def compiled_spec(path) -> dict:
    return next(yaml.safe_load_all(open(path)))


# --------------------------------------------------------------------------- KFP dry-run


def test_kfp_dry_run_request_field_by_field(capsys, tiny_package):
    doc = dry_run(
        capsys, "submit", "--host", "https://kfp.example.com/pipeline/", "--namespace", "team-a",
        "--experiment", "churn", "--package", str(tiny_package), "--param", "a=3", "--param", "label=007",
        "--param", "flag=true", "--param", "columns=[\"x\", \"y\"]", "--param", "b=2",
        "--run-name", "nightly 1", "--pipeline-root", "minio://mlpipeline/v2", "--service-account", "pipeline-runner",
        "--description", "retrain", "--token", "s3cr3t-token",
    )
    assert doc["target"] == "kfp"
    [request] = doc["requests"]
    assert request["method"] == "POST"
    assert request["url"] == "https://kfp.example.com/pipeline/apis/v2beta1/runs"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["authorization"] == "Bearer <redacted>"
    body = request["body"]
    assert body["display_name"] == "nightly 1"
    assert body["description"] == "retrain"
    assert body["service_account"] == "pipeline-runner"
    assert body["runtime_config"] == {
        "parameters": {"a": 3, "label": "007", "flag": True, "columns": ["x", "y"], "b": 2.0},
        "pipeline_root": "minio://mlpipeline/v2",
    }
    assert isinstance(body["runtime_config"]["parameters"]["b"], float)
    assert "experiment_id" not in body  # resolved from the name at submission
    assert "'churn' in namespace 'team-a'" in doc["notes"][0]
    # the spec is the compiled one, unchanged when caching is not overridden
    assert body["pipeline_spec"] == compiled_spec(tiny_package)
    assert "s3cr3t-token" not in json.dumps(doc)


def test_kfp_dry_run_caching_override_reaches_every_task(capsys, tiny_package):
    for flag, expected in (("--no-enable-caching", False), ("--enable-caching", True)):
        doc = dry_run(capsys, "submit", "--host", "http://localhost:8080", "--package", str(tiny_package),
                      "--param", "a=1", flag)
        tasks = doc["requests"][0]["body"]["pipeline_spec"]["root"]["dag"]["tasks"]
        assert len(tasks) == 2
        assert all(task["cachingOptions"].get("enableCache", False) is expected for task in tasks.values())


def test_kfp_dry_run_keeps_the_platform_spec(capsys, tmp_path):
    from kfp import compiler, dsl, kubernetes

    @dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
    def train(epochs: int) -> int:
        return epochs

    @dsl.pipeline(name="gpu-pipeline")
    def gpu(epochs: int = 2):
        task = train(epochs=epochs)
        kubernetes.add_node_selector(task, "cloud.google.com/gke-accelerator", "nvidia-tesla-t4")

    path = tmp_path / "gpu.yaml"
    compiler.Compiler().compile(gpu, str(path))
    doc = dry_run(capsys, "submit", "--host", "http://localhost:8080", "--package", str(path))
    spec = doc["requests"][0]["body"]["pipeline_spec"]
    assert set(spec) == {"pipeline_spec", "platform_spec"}
    selector = spec["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert selector["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}


def test_params_file_then_param_overrides(capsys, tiny_package, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("a: 5\nlabel: from-file\nflag: false\n")
    doc = dry_run(capsys, "submit", "--package", str(tiny_package), "--params-file", str(params),
                  "--param", "label=cli")
    assert doc["requests"][0]["body"]["runtime_config"]["parameters"] == {"a": 5, "label": "cli", "flag": False}
    assert doc["requests"][0]["url"] == f"{remote.KFP_IN_CLUSTER_HOST}/apis/v2beta1/runs"


def test_pipeline_by_name_is_compiled_through_kfpc_compiler(capsys, tiny_registered):
    doc = dry_run(capsys, "submit", "--pipeline", tiny_registered, "--param", "a=1")
    spec = doc["requests"][0]["body"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "tiny-pipeline"
    assert doc["requests"][0]["body"]["display_name"].startswith("tiny-pipeline ")


@pytest.mark.parametrize("argv, fragment", [
    (["--param", "a=x"], "parameter 'a' expects an integer, got 'x'"),
    (["--param", "a=1.5"], "expects an integer"),
    (["--param", "a=1", "--param", "flag=maybe"], "'flag' expects true or false"),
    (["--param", "a=1", "--param", "columns={}"], "'columns' expects a JSON list"),
    (["--param", "a=1", "--param", "epochs=3"], "has no parameter 'epochs'; it takes: a, b, columns, flag, label"),
    (["--param", "a"], "expected KEY=VALUE"),
    ([], "needs parameter(s) a"),
    (["--param", "a=1", "--run-name", " "], "--run-name must not be empty"),
])
def test_bad_parameters_fail_before_any_request(capsys, tiny_package, argv, fragment):
    code, out, err = run_cli(capsys, "submit", "--package", str(tiny_package), *argv, "--dry-run")
    assert code == 2
    assert out == ""
    assert fragment in err


def test_bad_package_arguments(capsys, tiny_package, tmp_path):
    code, _, err = run_cli(capsys, "submit", "--package", str(tmp_path / "missing.yaml"), "--dry-run")
    assert (code, "no such file") == (2, err.split(": ")[-1].strip())
    code, _, err = run_cli(capsys, "submit", "--package", str(tiny_package), "--pipeline", "x", "--dry-run")
    assert code == 2 and "exactly one of --package FILE or --pipeline NAME" in err
    code, _, err = run_cli(capsys, "submit", "--pipeline", "nope", "--dry-run")
    assert code == 2 and "--pipeline 'nope': unknown" in err
    not_a_pipeline = tmp_path / "values.yaml"
    not_a_pipeline.write_text("a: 1\n")
    code, _, err = run_cli(capsys, "submit", "--package", str(not_a_pipeline), "--dry-run")
    assert code == 2 and f"--package {not_a_pipeline}: not a compiled KFP v2 pipeline" in err
    broken = tmp_path / "broken.yaml"
    spec = compiled_spec(tiny_package)
    spec["root"]["dag"]["tasks"]["add"]["notAField"] = 1
    broken.write_text(yaml.safe_dump(spec))
    code, _, err = run_cli(capsys, "submit", "--package", str(broken), "--param", "a=1", "--dry-run")
    assert code == 2 and "not a valid KFP PipelineSpec" in err and "notAField" in err


# --------------------------------------------------------------------------- KFP real path (fake server)


def test_real_kfp_submit_sends_what_dry_run_printed_and_follows_tasks(capsys, tiny_package, fake_kfp):
    argv = ["submit", "--host", fake_kfp.host, "--experiment", "churn", "--namespace", "team-a",
            "--package", str(tiny_package), "--param", "a=3", "--run-name", "r1", "--no-enable-caching"]
    printed = dry_run(capsys, *argv)["requests"][0]
    assert fake_kfp.requests == []  # the dry-run sent nothing

    code, out, err = run_cli(capsys, *argv, "--wait", "--poll-interval", "0.01")
    assert code == 0, err
    [experiment] = fake_kfp.bodies("POST", "/apis/v2beta1/experiments")
    assert experiment == {"display_name": "churn", "namespace": "team-a"}
    experiment_id = next(iter(fake_kfp.experiments))
    [sent] = fake_kfp.bodies("POST", "/apis/v2beta1/runs")
    assert sent == dict(printed["body"], experiment_id=experiment_id)
    run_id = next(iter(fake_kfp.runs))
    assert f"run_id: {run_id}" in out
    assert f"url: {fake_kfp.host}/#/runs/details/{run_id}" in out
    assert "task train: RUNNING" in out and "task train: SUCCEEDED" in out
    assert f"run {run_id}: SUCCEEDED" in out
    assert out.count("task ingest: SUCCEEDED") == 1  # only changes are printed

    # a second submission reuses the experiment
    code, _, _ = run_cli(capsys, *argv)
    assert code == 0
    assert len(fake_kfp.bodies("POST", "/apis/v2beta1/experiments")) == 1
    assert [b["experiment_id"] for b in fake_kfp.bodies("POST", "/apis/v2beta1/runs")] == [experiment_id] * 2


def test_real_kfp_submit_exit_code_follows_the_run(capsys, tiny_package, fake_kfp):
    fake_kfp.run_states = ("RUNNING", "FAILED")
    code, out, _ = run_cli(capsys, "submit", "--host", fake_kfp.host, "--package", str(tiny_package),
                           "--param", "a=1", "--wait", "--poll-interval", "0.01")
    assert code == 1
    assert "task train: FAILED" in out


def test_real_kfp_submit_wait_times_out(capsys, tiny_package, fake_kfp):
    fake_kfp.run_states = ("RUNNING",)
    code, _, err = run_cli(capsys, "submit", "--host", fake_kfp.host, "--package", str(tiny_package),
                           "--param", "a=1", "--wait", "--poll-interval", "0.01", "--timeout", "0.05")
    assert code == 1
    assert "still RUNNING" in err


def test_real_kfp_submit_sends_the_token(capsys, tiny_package, fake_kfp, monkeypatch):
    monkeypatch.setenv("KFPC_KFP_TOKEN", "tok-123")
    code, _, err = run_cli(capsys, "submit", "--host", fake_kfp.host, "--package", str(tiny_package),
                           "--param", "a=1")
    assert code == 0, err
    run_request = next(r for r in fake_kfp.requests if r["path"] == "/apis/v2beta1/runs")
    assert run_request["headers"]["authorization"] == "Bearer tok-123"


def test_real_kfp_submit_uses_the_projected_service_account_token(capsys, tiny_package, fake_kfp, tmp_path,
                                                                   monkeypatch):
    token = tmp_path / "token"
    token.write_text("projected-sa-token")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    code, _, err = run_cli(capsys, "submit", "--host", fake_kfp.host, "--package", str(tiny_package),
                           "--param", "a=1")
    assert code == 0, err
    run_request = next(r for r in fake_kfp.requests if r["path"] == "/apis/v2beta1/runs")
    assert run_request["headers"]["authorization"] == "Bearer projected-sa-token"


# --------------------------------------------------------------------------- Vertex dry-run


VERTEX = ["--vertex", "--project", "my-project", "--region", "europe-west4", "--pipeline-root", "gs://bucket/root"]


def test_vertex_dry_run_request_field_by_field(capsys, tiny_package):
    doc = dry_run(
        capsys, "submit", *VERTEX, "--package", str(tiny_package), "--param", "a=3", "--param", "label=007",
        "--run-name", "nightly", "--job-id", "nightly-20250101", "--labels", "team=ml,env=prod",
        "--labels", "owner=alice", "--service-account", "runner@my-project.iam.gserviceaccount.com",
        "--network", "projects/123456/global/networks/vpc", "--no-enable-caching",
        "--encryption-key", "projects/my-project/locations/europe-west4/keyRings/r/cryptoKeys/k",
        "--experiment", "churn-exp",
    )
    assert doc["target"] == "vertex"
    [request] = doc["requests"]
    assert request["rpc"] == "google.cloud.aiplatform.v1.PipelineService.CreatePipelineJob"
    assert request["endpoint"] == "europe-west4-aiplatform.googleapis.com"
    body = request["request"]
    assert body["parent"] == "projects/my-project/locations/europe-west4"
    assert body["pipelineJobId"] == "nightly-20250101"
    job = body["pipelineJob"]
    assert job["displayName"] == "nightly"
    assert job["labels"] == {"team": "ml", "env": "prod", "owner": "alice"}
    assert job["serviceAccount"] == "runner@my-project.iam.gserviceaccount.com"
    assert job["network"] == "projects/123456/global/networks/vpc"
    assert job["encryptionSpec"] == {"kmsKeyName": "projects/my-project/locations/europe-west4/keyRings/r/cryptoKeys/k"}
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    assert job["runtimeConfig"]["parameterValues"] == {"a": 3, "label": "007"}
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "tiny-pipeline"
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert all(t["cachingOptions"] == {} or t["cachingOptions"].get("enableCache") is False for t in tasks.values())
    assert any("churn-exp" in note for note in doc["notes"])


def test_vertex_dry_run_request_is_the_sdk_request_type(tiny_package):
    """The printed JSON parses back into the SDK's own request proto, field for field."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform.compat.types import pipeline_service

    package = remote.load_package(tiny_package)
    job = remote.vertex_pipeline_job(tiny_package, "p", "us-central1", "gs://b/r", {"a": 1}, "d", job_id="j-1",
                                     credentials=AnonymousCredentials())
    request = remote.vertex_create_job_request(job, "sa@p.iam.gserviceaccount.com")
    again = pipeline_service.CreatePipelineJobRequest.from_json(json.dumps(remote.proto_to_dict(request)))
    assert again == request
    assert request.pipeline_job.service_account == "sa@p.iam.gserviceaccount.com"
    assert not job._gca_resource.service_account  # building the request did not change the job
    assert package.name == request.pipeline_job.pipeline_spec["pipelineInfo"]["name"]


@pytest.mark.parametrize("argv, fragment", [
    (["--vertex", "--project", "p", "--region", "r", "--param", "a=1"], "needs --pipeline-root gs://"),
    (["--vertex", "--project", "p", "--region", "r", "--pipeline-root", "/local", "--param", "a=1"],
     "needs a gs:// URI"),
    (["--vertex", "--region", "r", "--pipeline-root", "gs://b", "--param", "a=1"], "needs --project and --region"),
    ([*VERTEX, "--param", "a=1", "--labels", "Team=ml"], "--labels key 'Team'"),
    ([*VERTEX, "--param", "a=1", "--labels", "team"], "expected key=value"),
    ([*VERTEX, "--param", "a=1", "--network", "vpc"], "projects/<project-number>/global/networks/<name>"),
    ([*VERTEX, "--param", "a=1", "--service-account", "runner"], "--service-account 'runner'"),
    ([*VERTEX, "--param", "a=1", "--job-id", "Bad_ID"], "--job-id 'Bad_ID'"),
])
def test_vertex_bad_options_fail_before_any_request(capsys, tiny_package, argv, fragment):
    code, out, err = run_cli(capsys, "submit", "--package", str(tiny_package), *argv, "--dry-run")
    assert code == 2, out
    assert fragment in err


def test_vertex_refuses_a_kfp_compiled_package(capsys, tmp_path):
    from kfpc.pipelines import compiler

    path = compiler.compile_pipeline("training_pipeline", "kfp", tmp_path / "kfp.yaml")
    code, _, err = run_cli(capsys, "submit", "--package", str(path), *VERTEX, "--param",
                           "serving_root=gs://bucket/models", "--dry-run")
    assert code == 2
    assert "compiled for Kubeflow Pipelines" in err and "kfpc compile --target vertex" in err
