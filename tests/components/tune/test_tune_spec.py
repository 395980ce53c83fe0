"""The search-space spec: parsing, defaults, and errors that name the field and the value."""

import json

import pytest

from kfpc.components.tune import spec as S

GOOD = """
objective: {metric: validation_accuracy, direction: maximize}
max_trials: 6
parallel_trials: 2
algorithm: random
seed: 3
parameters:
  learning_rate: {type: float, min: 0.0001, max: 0.1, log: true}
  dropout: {type: float, min: 0.0, max: 0.5}
  batch_size: {type: choice, values: [0, 32, 128]}
  hidden_units: {type: choice, values: [[64, 32], [128]]}
  epochs: {type: int, min: 5, max: 50}
  model_family: {type: choice, values: [dnn, gbdt]}
fixed: {patience: 4}
"""


def test_yaml_json_and_file_give_the_same_spec(tmp_path):
    spec = S.parse_spec(GOOD)
    assert spec.metric == "validation_accuracy" and spec.direction == "maximize"
    assert spec.names == ["learning_rate", "dropout", "batch_size", "hidden_units", "epochs", "model_family"]
    assert spec.parameter("learning_rate").log and spec.parameter("epochs").type == S.INT
    assert spec.fixed == {"patience": 4}
    path = tmp_path / "space.json"
    path.write_text(spec.to_json())
    assert S.parse_spec(path) == spec
    assert S.parse_spec(json.loads(spec.to_json())) == spec


def test_defaults_and_the_default_space():
    spec = S.parse_spec({"parameters": {"dropout": {"type": "float", "min": 0, "max": 0.3}}})
    assert (spec.metric, spec.direction, spec.max_trials, spec.parallel_trials) == ("validation_loss", "minimize", 10, 1)
    default = S.parse_spec(S.DEFAULT_SPEC_YAML)
    assert {"learning_rate", "dropout", "hidden_units", "batch_size"} == set(default.names)


def test_choice_values_round_trip_through_the_command_line():
    spec = S.parse_spec(GOOD)
    units = spec.parameter("hidden_units")
    assert units.encode([64, 32]) == "64,32" and units.decode("64,32") == [64, 32]
    assert spec.parameter("batch_size").decode("32.0") == 32  # Vertex AI returns discrete values as floats
    assert spec.parameter("learning_rate").decode("0.01") == 0.01
    with pytest.raises(S.SpecError, match=r"parameters.hidden_units: '7,7' is none of the choices"):
        units.decode("7,7")


@pytest.mark.parametrize("change, message", [
    ({"parameters": {"learning_rate": {"type": "float", "min": 0, "max": 0.1, "log": True}}},
     r"parameters.learning_rate: a log scale needs min > 0, got min=0"),
    ({"parameters": {"dropout": {"type": "float", "min": 0.2, "max": 1.5}}},
     r"parameters.dropout.max: dropout must be in \[0.0, 1.0\), got 1.5"),
    ({"parameters": {"dropout": {"type": "float", "min": 0.3, "max": 0.1}}},
     r"parameters.dropout: min must be below max, got min=0.3 max=0.1"),
    ({"parameters": {"hidden_units": {"type": "choice", "values": [[64, 0]]}}},
     r"parameters.hidden_units.values\[0\]: hidden_units options are non-empty lists of positive integers, got \[64, 0\]"),
    ({"parameters": {"hidden_units": {"type": "int", "min": 1, "max": 3}}},
     r"parameters.hidden_units.type: hidden_units can only be searched as 'choice', got 'int'"),
    ({"parameters": {"model_family": {"type": "choice", "values": ["dnn", "svm"]}}},
     r"parameters.model_family.values\[1\]: model_family must be one of dnn, gbdt, auto, got 'svm'"),
    ({"parameters": {"batch_size": {"type": "float", "min": 8, "max": 64}}},
     r"parameters.batch_size.type: batch_size is an integer parameter"),
    ({"parameters": {"epochs": {"type": "int", "min": 1.5, "max": 9}}}, r"parameters.epochs.min must be an integer, got 1.5"),
    ({"parameters": {"learnin_rate": {"type": "float", "min": 0.1, "max": 0.2}}},
     r"parameters.learnin_rate: 'learnin_rate' is not a training parameter; known: .*learning_rate"),
    ({"parameters": {"validation_fraction": {"type": "float", "min": 0.1, "max": 0.2}}},
     r"parameters.validation_fraction: validation_fraction cannot be searched \(it decides the validation rows"),
    ({"parameters": {"dropout": {"type": "uniform", "min": 0, "max": 1}}},
     r"parameters.dropout.type must be one of float, int, choice, got 'uniform'"),
    ({"parameters": {"dropout": {"type": "choice", "values": [0.1, 0.1]}}}, r"parameters.dropout.values has duplicates"),
    ({"parameters": {}}, r"parameters must be a non-empty mapping"),
    ({"objective": {"metric": "eval_accuracy"}},
     r"objective.metric must be one of .*got 'eval_accuracy' \(the search is scored on the validation part"),
    ({"objective": {"metric": "validation_accuracy", "direction": "minimize"}},
     r"objective.direction: validation_accuracy is better when higher; direction must be maximize, got 'minimize'"),
    ({"max_trials": 0}, r"max_trials must be an integer >= 1, got 0"),
    ({"max_trials": 2, "parallel_trials": 3}, r"parallel_trials \(3\) cannot exceed max_trials \(2\)"),
    ({"algorithm": "bayes"}, r"algorithm must be one of tpe, random, grid, got 'bayes'"),
    ({"algorithm": "grid"}, r"algorithm grid needs int or choice parameters only; dropout are float ranges"),
    ({"fixed": {"dropout": 0.2}}, r"fixed.dropout: dropout is also searched in parameters"),
    ({"fixed": {"seed": 1}}, r"fixed.seed: set seed on the pipeline"),
    ({"fixed": {"learning_rate": -1}}, r"fixed.learning_rate: learning_rate must be in \(0.0, inf\), got -1"),
    ({"trials": 3}, r"unknown field\(s\) trials; known: objective"),
])
def test_bad_specs_name_the_field_and_the_value(change, message):
    data = {"parameters": {"dropout": {"type": "float", "min": 0.0, "max": 0.5}}}
    data.update(change)
    with pytest.raises(S.SpecError, match=message):
        S.parse_spec(data, origin="space.yaml")


def test_errors_name_the_file_and_reject_non_yaml(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("parameters: {dropout: {type: float, min: 0, max: 2}}\n")
    with pytest.raises(S.SpecError, match=rf"{path}: parameters.dropout.max"):
        S.parse_spec(str(path))
    with pytest.raises(S.SpecError, match="not YAML or JSON"):
        S.parse_spec("parameters: [unclosed\n  x: {")
    with pytest.raises(S.SpecError, match="no such search-space file"):
        S.parse_spec(str(tmp_path / "missing.yaml"))


def test_objective_from_validation_metrics():
    loss = S.parse_spec({"parameters": {"dropout": {"type": "float", "min": 0, "max": 0.5}}})
    assert S.objective_value(loss, {"log_loss": 0.4, "accuracy": 0.8, "rows": 20}) == 0.4
    assert S.objective_value(loss, {"mse": 2.0, "rmse": 1.41, "rows": 20}) == 2.0
    auc = S.parse_spec({"objective": {"metric": "validation_auc"},
                        "parameters": {"dropout": {"type": "float", "min": 0, "max": 0.5}}})
    with pytest.raises(S.SpecError, match="validation_auc' is not reported for this task; the validation metrics are "
                                          "validation_log_loss, validation_accuracy"):
        S.objective_value(auc, {"log_loss": 0.4, "accuracy": 0.8, "rows": 20})
