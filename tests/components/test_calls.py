"""components/_calls.py: a thin component passes its parameters to its core by name."""

import pytest

from kfpc.components._calls import same_named


def core(model_dir, *, name, mode="dry_run", timeout_s=600.0, output_dir=None):
    return locals()


def test_takes_the_same_named_parameters_and_the_explicit_ones_win():
    params = {"model": "artifact", "name": "churn", "mode": "local", "image": "", "timeout_s": 30}
    arguments = same_named(core, params, output_dir="/out", mode="cluster")
    assert arguments == {"name": "churn", "mode": "cluster", "timeout_s": 30, "output_dir": "/out"}
    assert core("/m", **arguments)["mode"] == "cluster"


def test_an_explicit_name_the_core_does_not_take_is_an_error():
    with pytest.raises(TypeError, match=r"takes no argument \['output_dri'\]"):
        same_named(core, {}, output_dri="/out")

