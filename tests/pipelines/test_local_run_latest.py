"""``runs/latest``: only kfpc's own symlink is ever replaced."""

import os

from kfpc.pipelines.local_run import point_latest


def test_latest_is_created_and_then_moved(tmp_path):
    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "b").mkdir()
    assert point_latest(runs / "a") and os.readlink(runs / "latest") == "a"
    assert point_latest(runs / "b") and os.readlink(runs / "latest") == "b"
    assert (runs / "latest").resolve() == (runs / "b").resolve()
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b", "latest"]  # no scratch link left


def test_a_regular_file_or_folder_named_latest_is_never_deleted(tmp_path):
    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "latest").write_text("my notes")
    assert not point_latest(runs / "a")
    assert (runs / "latest").read_text() == "my notes" and not (runs / "latest").is_symlink()
    (runs / "latest").unlink()
    (runs / "latest").mkdir()
    (runs / "latest" / "keep.txt").write_text("x")
    assert not point_latest(runs / "a")
    assert (runs / "latest" / "keep.txt").read_text() == "x"


def test_a_foreign_symlink_named_latest_is_left_alone(tmp_path):
    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "latest").symlink_to(tmp_path)
    assert not point_latest(runs / "a")
    assert os.readlink(runs / "latest") == str(tmp_path)


def test_latest_points_beside_a_run_written_anywhere(tmp_path):
    """`kfpc run --output-dir elsewhere/x` gets `elsewhere/latest` too, not only runs under runs/."""
    (tmp_path / "experiments" / "try1").mkdir(parents=True)
    assert point_latest(tmp_path / "experiments" / "try1")
    assert os.readlink(tmp_path / "experiments" / "latest") == "try1"
