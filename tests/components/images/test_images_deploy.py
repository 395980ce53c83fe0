"""The deploy image under its size budget: what its tasks and commands import, in the environment built from its lock.

``requirements-deploy.txt`` leaves out packages that locked packages declare (``#omit``) and the environment
drops folders of the aiplatform wheel (``#prune``). These tests prove, in that environment (the lock installed
with --no-deps, finished like the image, plus the kfpc wheel), that nothing deploy code runs needs them:
the deploy tasks from their YAML (push_vertex here; push_kserve and resolve_retraining_inputs in
test_images_contract.py), the ``kfpc submit|schedule|push`` commands (same output as in the full dev
environment; a real submission to a KFP API on 127.0.0.1), and an import check of every module the real
(non-dry-run) modes reach, with the clients they build.
"""

import importlib.metadata
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import kfpc_image_build as build
import kfpc_image_contract as contract
import pytest
from kfp import compiler, dsl
from kfp.dsl import Model

from kfpc.components.push.component import push_vertex

pytestmark = pytest.mark.slow

#: the import name of every #omit distribution of the deploy lock
OMITTED_IMPORT_NAMES = {
    "pyarrow": "pyarrow",
    "tensorflow-metadata": "tensorflow_metadata",
    "absl-py": "absl",
    "pillow": "PIL",
    "grpcio-tools": "grpc_tools",
    "setuptools": "setuptools",
    "uvloop": "uvloop",
    "httptools": "httptools",
    "python-dotenv": "dotenv",
    "websockets": "websockets",
    "google-genai": "google.genai",
    "tenacity": "tenacity",
    "distro": "distro",
    "google-cloud-bigquery": "google.cloud.bigquery",
}

#: every module the deploy tasks and commands import, in dry-run and in their real modes
DEPLOY_MODULES = [
    "kfp.dsl.executor_main",
    "kfpc.components.push.component",
    "kfpc.components.push.core",
    "kfpc.components.push.manifest",
    "kfpc.components.push.kube",
    "kfpc.components.push.rollout",
    "kfpc.components.push.storage",
    "kfpc.components.push.vertex",
    "kfpc.components.push.cli",
    "kfpc.pipelines.cli",
    "kfpc.pipelines.submit",
    "kfpc.pipelines.schedule",
    "kfpc.pipelines.remote",
    "kfpc.pipelines.spans",
    "kfpc.pipelines.cron",
    "kserve",
    "kubernetes.client",
    "kubernetes.client.exceptions",
    "kubernetes.config",
    "kfp.client",
    "kfp_server_api",
    "google.cloud.aiplatform",
    "google.cloud.aiplatform.helpers",
    "google.cloud.aiplatform.initializer",
    "google.cloud.aiplatform.utils",
    "google.cloud.aiplatform.compat.types",
    "google.cloud.aiplatform_v1",
    "google.cloud.storage",
    "google.api_core.exceptions",
    "google.auth.credentials",
]

#: runs in the deploy environment: import everything, build the clients the real modes build, report
IMPORT_CHECK = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform, aiplatform_v1, storage
from google.cloud.aiplatform.compat.types import pipeline_service, schedule_service  # what remote.py takes
from kfpc.components.push import kube
credentials = AnonymousCredentials()
options = {"api_endpoint": "127.0.0.1:9"}  # nothing is sent: clients are built, not called
aiplatform_v1.ModelServiceClient(credentials=credentials, client_options=options)
aiplatform_v1.EndpointServiceClient(credentials=credentials, client_options=options)
aiplatform.init(project="kfpc-test", location="us-central1", credentials=credentials)
storage.Client(project="kfpc-test", credentials=credentials)
kube.dry_run_client(None)
absent = {name: importlib.util.find_spec(name) is None for name in json.loads(sys.argv[2])}
print(json.dumps({"loaded": sorted(sys.modules), "absent": absent}))
"""


@pytest.fixture(scope="module")
def deploy_env(family_env):
    """Environment variables running ``python3`` from the deploy environment plus the kfpc wheel."""
    return dict(family_env("deploy"), PYTHONNOUSERSITE="1", HOME=os.environ.get("HOME", "/tmp"))


def _in_deploy(deploy_env, argv, cwd, extra_env=None, timeout=300) -> subprocess.CompletedProcess:
    python = Path(deploy_env["VIRTUAL_ENV"]) / "bin" / "python"
    env = dict(deploy_env, **(extra_env or {}))
    return subprocess.run([str(python), *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _kfpc_in_deploy(deploy_env, argv, cwd, extra_env=None) -> subprocess.CompletedProcess:
    return _in_deploy(deploy_env, ["-m", "kfpc.pipelines.cli", *argv], cwd, extra_env)


# ---- the lock's directives --------------------------------------------------------------------------------


def test_every_omitted_distribution_has_its_import_name_here():
    omitted = build.read_directives(build.requirements_lock("deploy"))["omit"]
    assert set(omitted) == set(OMITTED_IMPORT_NAMES), "name the import of a new #omit in OMITTED_IMPORT_NAMES"
    for dist, module in OMITTED_IMPORT_NAMES.items():
        # In the full dev environment the name is that distribution's: the import check below checks the right name.
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{module} is not importable in the dev environment"
        files = {str(Path(f.locate()).resolve()) for f in importlib.metadata.distribution(dist).files}
        origin = spec.origin if spec.origin not in (None, "namespace") else None
        location = origin or next(iter(spec.submodule_search_locations))
        assert str(Path(location).resolve()) in files or any(
            f.startswith(str(Path(location).resolve())) for f in files), f"{module} is not part of {dist}"


# ---- imports and clients ------------------------------------------------------------------------------------


def test_deploy_code_imports_and_builds_its_clients_without_the_omitted_packages(deploy_env, tmp_path):
    pruned = list(build.read_directives(build.requirements_lock("deploy"))["prune"])
    names = list(OMITTED_IMPORT_NAMES.values()) + pruned
    result = _in_deploy(deploy_env, ["-c", IMPORT_CHECK, json.dumps(DEPLOY_MODULES), json.dumps(names)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert all(report["absent"].values()), f"still installed in the deploy environment: {report['absent']}"
    loaded = set(report["loaded"])
    assert not {n for n in names if n in loaded or any(m.startswith(n + ".") for m in loaded)}
    # The environment is the lock's: kserve and aiplatform came from it, kfpc from the wheel beside it.
    assert {"kserve", "google.cloud.aiplatform", "pandas", "numpy"} <= loaded


# ---- the CLI ------------------------------------------------------------------------------------------------

TINY = "tests.pipelines.usedby.tiny_pipeline"


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory):
    from tests.pipelines.usedby import tiny_pipeline

    path = tmp_path_factory.mktemp("tiny") / "tiny.yaml"
    compiler.Compiler().compile(tiny_pipeline.build("kfp"), str(path))
    return path


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model"
    (path / "1" / "variables").mkdir(parents=True)
    (path / "1" / "saved_model.pb").write_bytes(os.urandom(2048))
    (path / "1" / "variables" / "variables.index").write_bytes(os.urandom(300))
    (path / "model_card.json").write_text(json.dumps({"label": "y", "task": "binary", "classes": ["a", "b"],
                                                      "features": []}))
    return path


def _normalize(doc: dict) -> dict:
    # The Vertex job id carries a timestamp: the only field two runs of the same command differ in.
    for request in doc.get("requests") if isinstance(doc.get("requests"), list) else []:
        body = request.get("request", {}) if isinstance(request, dict) else {}
        if "pipelineJobId" in body:
            body["pipelineJobId"] = body["pipelineJobId"].rsplit("-", 1)[0]
    return doc


CLI_CASES = {
    "submit-kfp": ["submit", "--host", "https://kfp.example.com", "--namespace", "team-a", "--experiment", "churn",
                   "--package", "{tiny}", "--param", "a=3", "--run-name", "r1", "--dry-run"],
    "submit-vertex": ["submit", "--vertex", "--project", "my-project", "--region", "europe-west4",
                      "--pipeline-root", "gs://bucket/root", "--package", "{tiny}", "--param", "a=3",
                      "--run-name", "r1", "--dry-run"],
    "schedule-kfp": ["schedule", "create", "--name", "nightly", "--cron", "0 0 2 * * *", "--package", "{tiny}",
                     "--param", "a=1", "--host", "http://kfp:8080", "--dry-run"],
    "schedule-vertex": ["schedule", "create", "--name", "nightly", "--cron", "0 2 * * *", "--package", "{tiny}",
                        "--param", "a=1", "--vertex", "--project", "my-project", "--region", "us-central1",
                        "--pipeline-root", "gs://bucket/root", "--dry-run"],
    "schedule-list-vertex": ["schedule", "list", "--vertex", "--project", "my-project", "--region", "us-central1",
                             "--dry-run"],
    "push-kserve": ["push", "kserve", "{model}", "--serving-root", "{out}/root", "--name", "penguins", "--gpu", "1",
                    "--canary", "10", "--deployment-mode", "Knative", "--output-dir", "{out}/manifest"],
    "push-vertex": ["push", "vertex", "{model}", "--serving-root", "{out}/root", "--name", "penguins",
                    "--project", "kfpc-test", "--region", "us-central1"],
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_kfpc_command_in_the_deploy_image_prints_what_the_full_environment_prints(
        case, deploy_env, tiny_yaml, fake_model, tmp_path, capsys):
    from kfpc.pipelines import cli

    def argv(out: Path) -> list[str]:
        out.mkdir()
        return [a.format(tiny=tiny_yaml, model=fake_model, out=out) for a in CLI_CASES[case]]

    result = _kfpc_in_deploy(deploy_env, argv(tmp_path / "deploy"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert cli.main(argv(tmp_path / "dev")) == 0
    dev = json.loads(capsys.readouterr().out.replace(str(tmp_path / "dev"), "<out>"))
    image = json.loads(result.stdout.replace(str(tmp_path / "deploy"), "<out>"))
    assert _normalize(image) == _normalize(dev)
    if case == "push-kserve":  # the manifest the KServe SDK objects rendered, byte for byte
        assert (tmp_path / "deploy" / "manifest" / "inferenceservice.yaml").read_text().replace(
            str(tmp_path / "deploy"), "<out>") == (tmp_path / "dev" / "manifest" / "inferenceservice.yaml"
                                                   ).read_text().replace(str(tmp_path / "dev"), "<out>")


def test_real_kfp_submission_and_schedule_from_the_deploy_image(deploy_env, tiny_yaml, tmp_path):
    from tests.pipelines.usedby.fake_kfp import FakeKfp

    env = {"HOME": str(tmp_path), "KF_PIPELINES_SA_TOKEN_PATH": str(tmp_path / "no-token")}
    with FakeKfp() as fake:
        submit = ["submit", "--host", fake.host, "--experiment", "churn", "--package", str(tiny_yaml),
                  "--param", "a=3", "--run-name", "r1"]
        printed = _kfpc_in_deploy(deploy_env, [*submit, "--dry-run"], tmp_path, env)
        assert printed.returncode == 0, printed.stderr[-3000:]
        result = _kfpc_in_deploy(deploy_env, [*submit, "--wait", "--poll-interval", "0.01"], tmp_path, env)
        assert result.returncode == 0, result.stderr[-3000:]
        [sent] = fake.bodies("POST", "/apis/v2beta1/runs")
        experiment_id = next(iter(fake.experiments))
        assert sent == dict(json.loads(printed.stdout)["requests"][0]["body"], experiment_id=experiment_id)
        assert f"run {next(iter(fake.runs))}: SUCCEEDED" in result.stdout

        schedule = ["schedule", "create", "--host", fake.host, "--name", "nightly", "--package", str(tiny_yaml),
                    "--param", "a=2", "--cron", "0 0 2 * * *", "--experiment", "churn"]
        result = _kfpc_in_deploy(deploy_env, schedule, tmp_path, env)
        assert result.returncode == 0, result.stderr[-3000:]
        [recurring] = fake.bodies("POST", "/apis/v2beta1/recurringruns")
        assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"


# ---- push_vertex from its compiled YAML ----------------------------------------------------------------------


@dsl.pipeline(name="deploy-vertex-contract")
def vertex_push_pipeline(model_uri: str, serving_root: str):
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
    push_vertex(model=model.output, serving_root=serving_root, name="penguins", project="kfpc-test",
                location="us-central1", mode="dry_run")


def test_push_vertex_runs_from_its_yaml_in_the_deploy_environment(deploy_env, family_env, thread_limits,
                                                                   fake_model, tmp_path):
    yaml_path = tmp_path / "vertex_push.yaml"
    compiler.Compiler().compile(vertex_push_pipeline, str(yaml_path))
    runner = contract.ContractRunner(yaml_path, tmp_path / "runs", family_env, extra_env=thread_limits)
    runs = runner.run({"model_uri": str(fake_model), "serving_root": str(tmp_path / "root")})
    [push] = [r for r in runs if r.kind == "container"]
    assert (push.status, push.family) == ("SUCCEEDED", "deploy")
    requests = json.loads((Path(push.outputs["requests"].path) / "vertex_requests.json").read_text())
    assert [r["method"] for r in requests] == [
        "ModelService.UploadModel", "EndpointService.CreateEndpoint", "EndpointService.DeployModel"]
    assert push.outputs["model_uri"] == f"{tmp_path / 'root'}/penguins/v1"
