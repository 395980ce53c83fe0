"""``tuned_training_pipeline``: compiled for kfp (local and Katib backends) and vertex, loaded back and wired
as promised; and one real kfp.local run with a tiny search (tune -> train the best -> card -> evaluate)."""

import json
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components

from kfpc.components.contract import read_card as load_model_card
from kfpc.pipelines import compiler, local_run, tuned_training
from kfpc.pipelines import placement as P

TINY = json.dumps({"max_trials": 2, "algorithm": "random", "seed": 0,
                   "parameters": {"learning_rate": {"type": "float", "min": 0.005, "max": 0.05, "log": True}}})


def _compile(tmp_path, target, **options):
    path = compiler.compile_pipeline("tuned_training_pipeline", target, tmp_path / f"{target}.yaml", **options)
    docs = list(yaml.safe_load_all(path.read_text()))
    loaded = kfp_components.load_component_from_file(str(path))
    return docs, loaded.pipeline_spec.root.dag.tasks


def _train_inputs(tasks, train_name):
    return tasks[train_name].inputs.parameters


def test_kfp_local_backend_wires_the_best_configuration_into_training(tmp_path):
    docs, tasks = _compile(tmp_path, "kfp")
    assert {"tune", "train", "record-tuning", "evaluate"} <= set(tasks)
    inputs = _train_inputs(tasks, "train")
    for name in ("hidden_units", "dropout", "learning_rate", "batch_size", "epochs", "patience"):
        assert inputs[name].task_output_parameter.producer_task == "tune", name
        assert inputs[name].task_output_parameter.output_parameter_key == name
    assert tasks["evaluate"].inputs.artifacts["model"].task_output_artifact.producer_task == "record-tuning"
    # the search runs where training runs: same GPU node selector and toleration
    kubernetes = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert kubernetes["exec-tune"]["nodeSelector"] == kubernetes["exec-train"]["nodeSelector"]
    assert kubernetes["exec-tune"]["tolerations"] == kubernetes["exec-train"]["tolerations"]
    executors = docs[0]["deploymentSpec"]["executors"]
    assert executors["exec-tune"]["container"]["image"] == executors["exec-train"]["container"]["image"]
    assert executors["exec-tune"]["container"]["resources"]["accelerator"] == \
        executors["exec-train"]["container"]["resources"]["accelerator"]


def test_kfp_katib_backend(tmp_path):
    docs, tasks = _compile(tmp_path, "kfp", backend="katib", gpu=P.GpuOptions(gpu_count=2, memory_limit="16G"))
    assert "katib-tune" in tasks and "tune" not in tasks
    assert _train_inputs(tasks, "train")["learning_rate"].task_output_parameter.producer_task == "katib-tune"
    katib = tasks["katib-tune"].inputs.parameters
    assert json.loads(katib["placement_json"].runtime_value.constant.string_value) == {
        "gpu_count": 2, "accelerator_resource": "nvidia.com/gpu", "node_selector": [["nvidia.com/gpu.present", "true"]],
        "tolerations": [["nvidia.com/gpu", "Exists", "", "NoSchedule"]], "cpu_limit": "", "memory_limit": "16G",
        "retries": 3}
    assert katib["image"].runtime_value.constant.string_value.endswith("kfpc-tf-gpu:" + _version())


def _version():
    from kfpc.components import __version__

    return __version__


def test_vertex_backend_runs_the_gcpc_tuning_job_and_reads_its_best_trial(tmp_path):
    docs, tasks = _compile(tmp_path, "vertex")
    assert {"vertex-tuning-request", "hyperparameter-tuning-job", "vertex-best-trial", "record-tuning"} <= set(tasks)
    job = tasks["hyperparameter-tuning-job"].inputs.parameters
    for name in ("worker_pool_specs", "study_spec_metrics", "study_spec_parameters", "max_trial_count",
                 "parallel_trial_count", "study_spec_algorithm", "base_output_directory"):
        assert job[name].task_output_parameter.producer_task == "vertex-tuning-request", name
    best = tasks["vertex-best-trial"].inputs.parameters["gcp_resources"].task_output_parameter
    assert (best.producer_task, best.output_parameter_key) == ("hyperparameter-tuning-job", "gcp_resources")
    train = next(name for name in tasks if name.startswith("train") or "custom-training-job" in name)
    assert _train_inputs(tasks, train)["learning_rate"].task_output_parameter.producer_task == "vertex-best-trial"
    with pytest.raises(ValueError, match="backend 'katib' does not run on target 'vertex'"):
        tuned_training.build_tuned_training_pipeline("vertex", backend="katib")


@pytest.mark.slow
@pytest.mark.e2e
def test_a_tiny_search_runs_end_to_end_in_kfp_local(tmp_path):
    summary = local_run.run("tuned_training_pipeline", {
        "search_space": TINY, "epochs": 3, "patience": 0, "push_mode": "dry_run",
        "serving_root": str(tmp_path / "serving")}, tmp_path / "run")
    assert summary.status == "SUCCESS", summary.error
    tune = summary.task("tune")
    chosen = json.loads(tune.outputs["hyperparameters_json"])
    history = json.loads(Path(tune.artifacts["tuning"]["path"], "history.json").read_text())
    assert len(history["trials"]) == 2 and chosen == history["hyperparameters"]
    card = load_model_card(summary.task("record-tuning").artifacts["tuned_model"]["path"])
    # the final model was trained with the chosen configuration and carries the search
    assert card["hyperparameters"]["learning_rate"] == pytest.approx(chosen["learning_rate"])
    assert card["tuning"]["best_trial"] == history["best_trial"] and card["tuning"]["trials"] == 2
    assert summary.task("evaluate").status == "SUCCESS"


def test_retraining_tune_option(tmp_path):
    from kfpc.pipelines import retraining

    path = compiler.compile_pipeline("retraining_pipeline", "kfp", tmp_path / "r.yaml", tune="local",
                                     search_space=TINY)
    tasks = kfp_components.load_component_from_file(str(path)).pipeline_spec.root.dag.tasks
    assert tasks["train"].inputs.parameters["dropout"].task_output_parameter.producer_task == "tune"
    assert tasks["tune"].inputs.parameters["search_space"].runtime_value.constant.string_value == TINY
    assert tasks["evaluate"].inputs.artifacts["model"].task_output_artifact.producer_task == "record-tuning"
    untuned = retraining.build_retraining_pipeline("kfp")
    assert "tune" not in untuned.pipeline_spec.root.dag.tasks


def test_the_tuned_model_is_pushed_like_training_pipelines_with_its_monitoring(tmp_path):
    """The push of the tuned model is the shared step: under the blessed condition, alert rules and dashboard
    (monitoring_config) from the tuned model, and the canary's Prometheus parameters reach the push."""
    _, tasks = _compile(tmp_path, "kfp")
    blessed = tasks["condition-1"].component_ref.name
    spec = kfp_components.load_component_from_file(str(tmp_path / "kfp.yaml")).pipeline_spec
    inner = spec.components[blessed].dag.tasks
    assert {"push-kserve", "monitoring-config"} <= set(inner)
    assert inner["monitoring-config"].inputs.artifacts["model"].component_input_artifact
    push = inner["push-kserve"].inputs
    assert push.artifacts["monitoring"].task_output_artifact.producer_task == "monitoring-config"
    for name in ("prometheus_url", "prometheus_selector"):
        assert push.parameters[name].component_input_parameter.endswith(name), name
    assert spec.root.input_definitions.parameters["namespace"].default_value.string_value == "kubeflow-user"
