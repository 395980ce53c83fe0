"""The Vertex AI tuning request, built with GCPC's serializers and parsed into the real
``aiplatform_v1.HyperparameterTuningJob`` proto (no call made), and the best trial read back from a job."""

import json
import re

import pytest
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from kfpc.components.tune import core, trial, vertex
from kfpc.components.tune import spec as S

SPACE = {
    "objective": {"metric": "validation_loss"}, "max_trials": 9, "parallel_trials": 3, "max_failed_trials": 2,
    "algorithm": "random",
    "parameters": {
        "learning_rate": {"type": "float", "min": 0.0001, "max": 0.1, "log": True},
        "epochs": {"type": "int", "min": 5, "max": 40},
        "batch_size": {"type": "choice", "values": [128, 0, 32]},
        "hidden_units": {"type": "choice", "values": [[64, 32], [128]]},
        "model_family": {"type": "choice", "values": ["dnn", "gbdt"]},
    },
}


def _request(**overrides):
    options = dict(image="ghcr.io/kfpc/kfpc-tf-gpu:0.1.0", data_uri="gs://b/run/ingest/data", label="species",
                   base_output_directory="gs://b/run/tune/job_dir", base={"dropout": 0.3}, machine_type="g2-standard-8",
                   accelerator_type="NVIDIA_L4", accelerator_count=1, service_account="sa@p.iam.gserviceaccount.com")
    options.update(overrides)
    return vertex.build_request(S.parse_spec(SPACE), **options)


def test_request_is_a_valid_hyperparameter_tuning_job_field_by_field():
    request = _request()
    job = aiplatform_v1.HyperparameterTuningJob()
    # strict: an unknown or misspelt field in what the GCPC op would send fails here
    json_format.ParseDict(vertex.job_payload(request), job._pb, ignore_unknown_fields=False)
    Study = aiplatform_v1.StudySpec
    assert job.display_name == "kfpc-tuning"
    assert (job.max_trial_count, job.parallel_trial_count, job.max_failed_trial_count) == (9, 3, 2)
    assert job.study_spec.algorithm == Study.Algorithm.RANDOM_SEARCH
    assert job.study_spec.measurement_selection_type == Study.MeasurementSelectionType.BEST_MEASUREMENT
    assert [(m.metric_id, m.goal) for m in job.study_spec.metrics] == [
        ("validation_loss", Study.MetricSpec.GoalType.MINIMIZE)]
    parameters = {p.parameter_id: p for p in job.study_spec.parameters}
    assert list(parameters) == list(SPACE["parameters"])
    lr = parameters["learning_rate"]
    assert (lr.double_value_spec.min_value, lr.double_value_spec.max_value) == (0.0001, 0.1)
    assert lr.scale_type == Study.ParameterSpec.ScaleType.UNIT_LOG_SCALE
    assert (parameters["epochs"].integer_value_spec.min_value, parameters["epochs"].integer_value_spec.max_value) == (5, 40)
    assert parameters["epochs"].scale_type == Study.ParameterSpec.ScaleType.UNIT_LINEAR_SCALE
    assert list(parameters["batch_size"].discrete_value_spec.values) == [0.0, 32.0, 128.0]
    assert list(parameters["hidden_units"].categorical_value_spec.values) == ["64,32", "128"]
    assert list(parameters["model_family"].categorical_value_spec.values) == ["dnn", "gbdt"]
    pool = job.trial_job_spec.worker_pool_specs[0]
    assert len(job.trial_job_spec.worker_pool_specs) == 1 and pool.replica_count == 1
    assert pool.machine_spec.machine_type == "g2-standard-8"
    assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_L4
    assert pool.machine_spec.accelerator_count == 1
    assert (pool.disk_spec.boot_disk_type, pool.disk_spec.boot_disk_size_gb) == ("pd-ssd", 100)
    assert pool.container_spec.image_uri == "ghcr.io/kfpc/kfpc-tf-gpu:0.1.0"
    assert list(pool.container_spec.command) == ["python", "-m", "kfpc.components.tune.trial"]
    assert job.trial_job_spec.base_output_directory.output_uri_prefix == "gs://b/run/tune/job_dir"
    assert job.trial_job_spec.service_account == "sa@p.iam.gserviceaccount.com"
    # Vertex AI appends --<parameter>=<value>: the trial program must read the result
    args = list(pool.container_spec.args) + ["--learning_rate=0.003", "--epochs=12", "--batch_size=32.0",
                                             "--hidden_units=128", "--model_family=gbdt"]
    parsed, searched = trial.parse_args(args)
    assert searched == {"learning_rate": 0.003, "epochs": 12, "batch_size": 32, "hidden_units": [128],
                        "model_family": "gbdt"}
    assert parsed.data == "gs://b/run/ingest/data" and json.loads(parsed.base) == {"dropout": 0.3}


def test_cpu_trials_and_multi_worker_trials():
    cpu = _request(accelerator_count=0)["worker_pool_specs"][0]["machine_spec"]
    assert cpu == {"machine_type": "g2-standard-8"}
    pools = _request(replica_count=3)["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    job = aiplatform_v1.HyperparameterTuningJob()
    json_format.ParseDict(vertex.job_payload(_request(replica_count=3)), job._pb, ignore_unknown_fields=False)
    assert [p.replica_count for p in job.trial_job_spec.worker_pool_specs] == [1, 2]


def test_the_op_accepts_the_request_inputs_serialized_as_gcpc_does():
    from google_cloud_pipeline_components.v1.hyperparameter_tuning_job import (
        HyperparameterTuningJobRunOp,
        serialize_metrics,
        serialize_parameters,
    )

    expected = set(HyperparameterTuningJobRunOp.component_spec.inputs)
    request = _request()
    assert set(request) <= expected, set(request) - expected
    spec = S.parse_spec(SPACE)
    assert request["study_spec_parameters"] == serialize_parameters(vertex.parameter_specs(spec))
    assert request["study_spec_metrics"] == serialize_metrics({"validation_loss": "minimize"})


def _finished_job() -> dict:
    """A finished job as the Vertex AI client returns it (proto-plus message -> REST JSON)."""
    Trial = aiplatform_v1.Trial

    def trial(id_, state, loss, **params):
        measurement = aiplatform_v1.Measurement(metrics=[aiplatform_v1.Measurement.Metric(metric_id="validation_loss",
                                                                                           value=loss)]) if loss else None
        return Trial(id=id_, state=state, final_measurement=measurement,
                     parameters=[Trial.Parameter(parameter_id=k, value=v) for k, v in params.items()])

    job = aiplatform_v1.HyperparameterTuningJob(
        name="projects/p/locations/europe-west4/hyperparameterTuningJobs/42",
        trials=[
            trial("1", Trial.State.SUCCEEDED, 0.52, learning_rate=0.01, epochs=10.0, batch_size=0.0,
                  hidden_units="128", model_family="dnn"),
            trial("2", Trial.State.SUCCEEDED, 0.31, learning_rate=0.003, epochs=25.0, batch_size=32.0,
                  hidden_units="64,32", model_family="gbdt"),
            trial("3", Trial.State.INFEASIBLE, None, learning_rate=0.09, epochs=5.0, batch_size=128.0,
                  hidden_units="128", model_family="dnn"),
        ])
    return vertex.job_to_dict(job)


def test_best_trial_of_a_finished_job():
    spec = S.parse_spec(SPACE)
    result = core.result_from_trials("vertex", spec, {"dropout": 0.3}, vertex.trials_from_job(_finished_job()))
    assert result.best_trial == "2" and result.best_value == pytest.approx(0.31)
    assert result.hyperparameters == {**core.baseline_hyperparameters(spec, {"dropout": 0.3}), "learning_rate": 0.003,
                                      "epochs": 25, "batch_size": 32, "hidden_units": [64, 32], "model_family": "gbdt"}
    assert [r["state"] for r in result.history] == ["COMPLETE", "COMPLETE", "FAILED"]
    outputs = core.pipeline_outputs(result)
    assert outputs["hidden_units"] == [64, 32] and outputs["model_family"] == "gbdt"
    with pytest.raises(core.TuneError, match="vertex: no trial reported 'validation_loss'"):
        core.result_from_trials("vertex", spec, {}, vertex.trials_from_job({"trials": []}))


def test_job_name_from_gcp_resources():
    resources = json.dumps({"resources": [{"resourceType": "HyperparameterTuningJob", "resourceUri":
                            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/"
                            "hyperparameterTuningJobs/42"}]})
    assert vertex.job_name_from_gcp_resources(resources) == "projects/p/locations/europe-west4/hyperparameterTuningJobs/42"
    with pytest.raises(vertex.VertexTuningError, match=re.escape("gcp_resources names no HyperparameterTuningJob")):
        vertex.job_name_from_gcp_resources('{"resources": [{"resourceType": "CustomJob", "resourceUri": "x"}]}')


def test_the_request_component_returns_the_op_inputs(tmp_path):
    from kfp import dsl

    from kfpc.components.tune.component import vertex_tuning_request

    job_dir = dsl.Artifact(uri=str(tmp_path / "job_dir"), metadata={})
    outputs = vertex_tuning_request.python_func(
        data=dsl.Dataset(uri="gs://b/run/data", metadata={}), job_dir=job_dir, label="species", image="img:1",
        search_space=json.dumps(SPACE), accelerator_count=0)
    assert outputs.base_output_directory == str(tmp_path / "job_dir")
    assert outputs.worker_pool_specs[0]["machine_spec"] == {"machine_type": "n1-standard-8"}
    assert outputs.study_spec_algorithm == "RANDOM_SEARCH" and outputs.max_trial_count == 9
    assert json.loads((tmp_path / "job_dir" / "request.json").read_text())["parallel_trial_count"] == 3
