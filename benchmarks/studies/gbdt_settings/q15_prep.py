"""Issue 15 study: ingest each small table once (kfpc's ingest + statistics + spec), pool Split-train and
Split-eval (labelled rows) and pickle (spec, inputs, target, n_train_kfpc) for fast repeated-split experiments."""
import logging
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ (bench_quality)
import bench_quality as B

from kfpc.components.ingest.core import ingest
from kfpc.components.statistics.core import write_statistics
from kfpc.components.train import features as F
from kfpc.components.train import gbdt

logging.basicConfig(level=logging.WARNING)
OUT = Path("/tmp/q15c")
names = sys.argv[1:] or ["iris", "hitters", "penguins_raw", "cars", "mroz", "college", "seattle_weather", "wage", "caravan"]
suite = {e["name"]: e for e in B.load_suite()}
for name in names:
    entry = suite[name]
    work = OUT / name
    if (work / "pooled.pkl").exists():
        continue
    t = time.time()
    ingest(str(B.DATA / entry["file"]), work / "data", label=entry["label"])
    write_statistics(work / "data", work / "statistics")
    spec = F.build_spec(work / "data", entry["label"], statistics_dir=work / "statistics")
    tr = gbdt.read_part(work / "data" / "Split-train" / "data.parquet", spec)
    ev = gbdt.read_part(work / "data" / "Split-eval" / "data.parquet", spec)
    inputs = {k: np.concatenate([tr[0][k], ev[0][k]]) for k in tr[0]}
    target = np.concatenate([tr[1], ev[1]])
    pickle.dump({"spec": spec, "inputs": inputs, "target": target, "n_train": len(tr[1]), "name": name,
                 "task": spec.label.task}, open(work / "pooled.pkl", "wb"))
    print(name, spec.label.task, len(tr[1]), len(ev[1]), round(time.time() - t, 1), flush=True)
