"""kfpc.components.contract: the card is read without TensorFlow (the deploy image has none, nor pyarrow),
the outputs a task promises are stated once, and the layout errors name the folder and what it holds."""

import json
import subprocess
import sys

import pytest

from kfpc.components import artifacts, contract
from kfpc.components.contract.local_server import LocalServer

CARD = {"label": "y", "task": "multiclass", "classes": ["a", "b", "c"],
        "features": [{"name": "x", "dtype": "float64", "kind": "numeric"}]}


def _loaded_after(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", f"import json, sys; {code}; print(json.dumps(sorted(sys.modules)))"],
                            capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(result.stdout.strip().splitlines()[-1])}


def test_reading_a_card_imports_neither_tensorflow_nor_kfp_nor_pyarrow(tmp_path):
    (tmp_path / "model_card.json").write_text(json.dumps(CARD))
    loaded = _loaded_after(f"from kfpc.components import contract; contract.read_card({str(tmp_path)!r}); "
                           f"contract.locate")
    assert not loaded & {"tensorflow", "kfp", "pyarrow", "numpy", "tensorflow_metadata"}, loaded


def test_expected_outputs_by_task():
    assert contract.expected_outputs(CARD) == ("probabilities", "class_ids", "classes")
    assert contract.expected_outputs("binary") == contract.CLASSIFICATION_OUTPUTS
    assert contract.expected_outputs({"task": "regression"}) == ("predictions",)
    with pytest.raises(artifacts.ArtifactError, match="'task' is 'ranking'"):
        contract.expected_outputs("ranking")


def test_locate_picks_the_highest_version_and_the_card_beside_it(tmp_path):
    for version in ("1", "10", "2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    contract.write_card(CARD, tmp_path)
    location = contract.locate(tmp_path)
    assert (location.version, location.version_dir, location.card_path) == ("10", tmp_path / "10",
                                                                           tmp_path / "model_card.json")
    direct = contract.locate(tmp_path / "2")
    assert (direct.version, direct.card_path) == ("2", tmp_path / "model_card.json")


def test_a_folder_without_a_saved_model_lists_what_it_holds(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_card.json").write_text("{}")
    with pytest.raises(contract.ModelLayoutError, match=r"no SavedModel found.*\['model/'\]"):
        contract.locate(tmp_path)
    with pytest.raises(contract.ModelLayoutError, match="no such folder"):
        contract.load_predictor(tmp_path / "absent")


def test_load_predictor_without_a_card_names_the_folder_before_loading_tensorflow(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(contract.ModelLayoutError, match=f"{tmp_path}: no model_card.json beside or inside"):
        contract.load_predictor(tmp_path)


def test_the_local_server_is_started_by_module_name():
    command = LocalServer("/m", model_name="m", port=8080).command()
    assert command[:3] == [sys.executable, "-m", "kfpc.serving"]
    assert command[command.index("--model_dir") + 1] == "/m"
