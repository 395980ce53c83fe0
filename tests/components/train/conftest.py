"""Fixtures of the training tests: small real datasets and a subprocess runner for train()."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("train_worker.py")


def _limit_tf_threads():
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized by an earlier test module
        pass


_limit_tf_threads()


def write_dataset(root: Path, train: pd.DataFrame, eval_: pd.DataFrame) -> Path:
    """A Dataset artifact (``Split-train`` / ``Split-eval`` Parquet) from two frames."""
    for split, frame in (("train", train), ("eval", eval_)):
        folder = root / f"Split-{split}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "data.parquet")
    return root


@pytest.fixture(scope="session")
def penguins_dataset(tmp_path_factory) -> Path:
    from kfpc.components.ingest import core as ingest

    out = tmp_path_factory.mktemp("penguins") / "data"
    ingest.ingest(str(REPO / "pipelines/data/penguins.csv"), out)
    return out


@pytest.fixture(scope="session")
def house_dataset(tmp_path_factory) -> Path:
    from kfpc.components.ingest import core as ingest

    out = tmp_path_factory.mktemp("house") / "data"
    ingest.ingest(str(REPO / "pipelines/data/house_prices.csv"), out)
    return out


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    """Binary task with a high-cardinality string with nulls, an integer code, numbers with NaN."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, rows)
    amount = rng.lognormal(3, 1, rows)
    city = rng.integers(0, 300, rows)
    code = rng.integers(0, 5, rows)
    logit = 2.0 * x + np.where(city % 3 == 0, 1.5, -1.0) + np.where(code == 2, 1.0, 0.0) + 0.002 * amount
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {
            "x": x,
            "amount": amount,
            "city": [f"city-{c}" for c in city],
            "code": code.astype(np.int64),
            "label": label,
        }
    )
    frame.loc[rng.random(rows) < 0.05, "x"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "city"] = None
    return frame


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    return write_dataset(root, synthetic_frame(4000, 1), synthetic_frame(1000, 2))


def run_worker(args: dict, env: dict | None = None, timeout: float = 300, wait: bool = True):
    """Run ``train_worker.py`` with ``args`` in a fresh interpreter; return its JSON result (or the Popen)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    command = [sys.executable, str(WORKER), json.dumps(args)]
    if not wait:
        return subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"worker failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture()
def dataset_writer():
    """``write_dataset(root, train_frame, eval_frame) -> root``."""
    return write_dataset


@pytest.fixture()
def frame_maker():
    """``synthetic_frame(rows, seed) -> DataFrame``."""
    return synthetic_frame


@pytest.fixture()
def worker():
    """``run_worker(args, env=None, timeout=300, wait=True)``: train() in a fresh interpreter."""
    return run_worker
