"""The Katib Experiment: checked with the Experiment model of Kubeflow's Katib SDK and its trial Job with the
Kubernetes models of Kubeflow's Trainer SDK (types, unknown or misspelt fields: tests/k8s_models.py), placed like the training step, its trials' command lines parsed by the trial program, its metrics filter
matching the trial's output lines."""

import io
import json
import re

import pytest
from kubeflow_katib_api.models import V1beta1Experiment
from kubeflow_trainer_api.models import IoK8sApiBatchV1Job

from kfpc.components.tune import core, katib, trial
from kfpc.components.tune import spec as S
from kfpc.pipelines import placement as P
from kfpc.pipelines import tuned_training
from tests.k8s_models import ManifestError, check

SPACE = {
    "objective": {"metric": "validation_accuracy"}, "max_trials": 8, "parallel_trials": 2, "seed": 5,
    "parameters": {
        "learning_rate": {"type": "float", "min": 0.0001, "max": 0.1, "log": True},
        "epochs": {"type": "int", "min": 5, "max": 40},
        "hidden_units": {"type": "choice", "values": [[64, 32], [128]]},
        "batch_size": {"type": "choice", "values": [0, 64]},
    },
}


def _validate(manifest: dict) -> None:
    """The Experiment with Katib's model; its trialSpec, free-form there, with Kubernetes' batch/v1 Job model.
    Katib's CRD keeps unknown fields and its controller ignores them, so a misspelt field would pass silently
    on a cluster: the check refuses it."""
    check(manifest, V1beta1Experiment)
    check(manifest["spec"]["trialTemplate"]["trialSpec"], IoK8sApiBatchV1Job)


def _experiment(**overrides):
    options = dict(name="kfpc-tune-run-1", namespace="team-a", image="ghcr.io/kfpc/kfpc-tf-gpu:0.1.0",
                   data_uri="gs://bucket/run/data", label="species", base={"epochs": 20, "dropout": 0.2},
                   statistics_uri="gs://bucket/run/statistics")
    options.update(overrides)
    return katib.build_experiment(S.parse_spec(SPACE), **options)


def test_experiment_validates_against_the_sdk_models():
    from kubeflow.optimizer.constants import constants as sdk

    manifest = _experiment()
    _validate(manifest)
    spec = manifest["spec"]
    assert (manifest["apiVersion"], manifest["kind"]) == (sdk.API_VERSION, sdk.EXPERIMENT_KIND)
    # what the backend calls: the group/version/plural of Katib's own client
    assert (katib.GROUP, katib.VERSION, katib.PLURAL) == (sdk.GROUP, sdk.VERSION, sdk.EXPERIMENT_PLURAL)
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "validation_accuracy"}
    assert (spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]) == (8, 2, 3)
    assert spec["algorithm"] == {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "5"}]}
    assert spec["parameters"][0] == {"name": "learning_rate", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}}
    assert spec["parameters"][2]["feasibleSpace"] == {"list": ["64,32", "128"]}
    assert [p["reference"] for p in spec["trialTemplate"]["trialParameters"]] == list(SPACE["parameters"])


def test_the_model_check_catches_mistakes():
    wrong_type = _experiment()
    wrong_type["spec"]["maxTrialCount"] = "8"
    with pytest.raises(ManifestError, match=r"maxTrialCount\n  Input should be a valid integer"):
        _validate(wrong_type)
    misspelt = _experiment()
    misspelt["spec"]["objective"]["objectiveMetric"] = misspelt["spec"]["objective"].pop("objectiveMetricName")
    with pytest.raises(ManifestError, match=r"\n  spec\.objective\.objectiveMetric: unknown field$"):
        _validate(misspelt)
    bad_pod = _experiment()
    pod = bad_pod["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["containers"][0]["command"] = "python"
    with pytest.raises(ManifestError, match=r"command\n  Input should be a valid list"):
        _validate(bad_pod)
    pod["containers"][0]["command"] = ["python"]
    pod["containers"][0]["resource"] = pod["containers"][0].pop("resources", {})
    pod["nodeSelecter"] = {"pool": "gpu"}
    with pytest.raises(ManifestError) as refused:
        _validate(bad_pod)
    assert set(str(refused.value).splitlines()[1:]) == {"  spec.template.spec.nodeSelecter: unknown field",
                                                        "  spec.template.spec.containers[0].resource: unknown field"}


def test_trials_are_placed_like_the_training_step():
    options = P.GpuOptions(gpu_count=2, kfp_node_selector=(("cloud.google.com/gke-accelerator", "nvidia-l4"),),
                           memory_limit="32G", retries=1)
    placement = katib.TrialPlacement.from_dict(tuned_training.katib_placement(options))
    job = _experiment(placement=placement)["spec"]["trialTemplate"]["trialSpec"]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 1
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 2, "memory": "32G"}}
    cpu = _experiment(placement=katib.TrialPlacement.from_dict(tuned_training.katib_placement(P.GpuOptions.cpu())))
    cpu_pod = cpu["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu_pod and "tolerations" not in cpu_pod and "resources" not in cpu_pod["containers"][0]
    with pytest.raises(katib.KatibError, match="placement: unknown field"):
        katib.TrialPlacement.from_dict({"gpus": 1})
    with pytest.raises(katib.KatibError, match="experiment name must be a DNS-1123 label"):
        _experiment(name="Tune_Run")
    assert katib.experiment_name("0F3A_b2") == "kfpc-tune-0f3a-b2"


def test_the_trial_program_reads_the_command_katib_runs():
    manifest = _experiment()
    command = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "kfpc.components.tune.trial"]
    # what Katib substitutes for ${trialParameters.<name>}
    values = {"learning_rate": "0.0031", "epochs": "12", "hidden_units": "64,32", "batch_size": "64"}
    substituted = [re.sub(r"\$\{trialParameters\.(\w+)\}", lambda m: values[m.group(1)], c) for c in command[3:]]
    args, searched = trial.parse_args(substituted)
    assert searched == {"learning_rate": 0.0031, "epochs": 12, "hidden_units": [64, 32], "batch_size": 64}
    assert (args.data, args.label, args.statistics) == ("gs://bucket/run/data", "species", "gs://bucket/run/statistics")
    assert core.baseline_hyperparameters(args.spec_object, json.loads(args.base))["dropout"] == 0.2
    with pytest.raises(S.SpecError, match="trial argument --units: not a parameter of the search space"):
        trial.parse_args([*substituted, "--units=3"])


def test_the_metrics_filter_takes_the_trials_lines_and_not_keras_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(tmp_path / "hypertune" / "output.metrics"))
    stream = io.StringIO()
    how = trial.report({"validation_accuracy": 0.875, "validation_loss": 0.31, "train_accuracy": 0.9},
                       "validation_accuracy", stream)
    lines = stream.getvalue().splitlines() + ["epoch 3: accuracy=0.8, loss=0.5, val_loss=0.44"]
    pattern = re.compile(katib.METRICS_FORMAT)
    found = {m.group(1): float(m.group(2)) for line in lines for m in pattern.finditer(line)}
    assert found == {"validation_accuracy": 0.875, "validation_loss": 0.31}
    if how == "file":  # cloudml-hypertune absent: the line it would write
        line = json.loads((tmp_path / "hypertune" / "output.metrics").read_text())
        assert line["validation_accuracy"] == "0.875" and line["trial"] == "0"


def test_best_trial_from_katib_trials():
    spec = S.parse_spec(SPACE)
    trials = [
        {"metadata": {"name": "t1"}, "spec": {"parameterAssignments": [
            {"name": "learning_rate", "value": "0.01"}, {"name": "epochs", "value": "10"},
            {"name": "hidden_units", "value": "128"}, {"name": "batch_size", "value": "0"}]},
         "status": {"conditions": [{"type": "Succeeded", "status": "True"}],
                    "observation": {"metrics": [{"name": "validation_accuracy", "latest": "0.81"}]}}},
        {"metadata": {"name": "t2"}, "spec": {"parameterAssignments": [
            {"name": "learning_rate", "value": "0.002"}, {"name": "epochs", "value": "30"},
            {"name": "hidden_units", "value": "64,32"}, {"name": "batch_size", "value": "64"}]},
         "status": {"conditions": [{"type": "Succeeded", "status": "True"}],
                    "observation": {"metrics": [{"name": "validation_accuracy", "latest": "0.9"}]}}},
        {"metadata": {"name": "t3"}, "spec": {"parameterAssignments": [
            {"name": "learning_rate", "value": "0.05"}, {"name": "epochs", "value": "5"},
            {"name": "hidden_units", "value": "128"}, {"name": "batch_size", "value": "0"}]},
         "status": {"conditions": [{"type": "Failed", "status": "True", "message": "OOMKilled"}],
                    "observation": {"metrics": [{"name": "validation_accuracy", "latest": "unavailable"}]}}},
    ]
    result = core.result_from_trials("katib", spec, {"dropout": 0.2}, katib.trials_from_katib(trials))
    assert result.best_trial == "t2" and result.best_value == 0.9
    assert result.hyperparameters["hidden_units"] == [64, 32] and result.hyperparameters["batch_size"] == 64
    assert result.hyperparameters["dropout"] == 0.2
    assert [r["state"] for r in result.history] == ["COMPLETE", "COMPLETE", "FAILED"]
    assert result.history[2]["error"] == "OOMKilled"


def test_the_katib_component_dry_run_writes_the_manifest_and_passes_the_baseline_on(tmp_path):
    import yaml
    from kfp import dsl

    from kfpc.components.tune.component import katib_tune

    data = dsl.Dataset(uri="gs://bucket/run/data", metadata={})
    experiment, tuning, report = (dsl.Artifact(uri=str(tmp_path / n), metadata={}) for n in ("exp", "tuning", "r.html"))
    outputs = katib_tune.python_func(
        data=data, experiment=experiment, tuning=tuning, report=report, label="species", image="img:1",
        run_id="3F2b-11", search_space=json.dumps(SPACE), hidden_units=[32], learning_rate=0.02,
        placement_json=json.dumps({"gpu_count": 1, "memory_limit": "8G"}))
    manifest = yaml.safe_load((tmp_path / "exp" / "experiment.yaml").read_text())
    _validate(manifest)
    assert manifest["metadata"]["name"] == "kfpc-tune-3f2b-11"
    pod = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1, "memory": "8G"}
    assert outputs.hidden_units == [32] and outputs.learning_rate == 0.02  # dry run: the pipeline's values
    assert core.load_result(tmp_path / "tuning")["note"].startswith("dry run")
    with pytest.raises(ValueError, match="mode must be dry_run or cluster, got 'apply'"):
        katib_tune.python_func(data=data, experiment=experiment, tuning=tuning, report=report, label="species",
                               image="img:1", run_id="x", mode="apply")
