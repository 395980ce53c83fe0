"""Issue 15 study: kfpc's DNN (core.train(model_family="dnn"), default parameters) on the same repeated splits
as q15_trees.py. Each split is written as a Dataset folder (Split-train in the split's row order, so kfpc's carve
picks the same validation rows as q15_trees.py); the spec comes from the statistics of kfpc's own Split-train
(so on random seeds the normalisation has seen a few eval rows: negligible). Writes /tmp/q15c/<table>/dnn_<seed>.pkl.
"""
import logging
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as B
import q15_trees as Q

from kfpc.components.contract import load_predictor
from kfpc.components.train import core

logging.basicConfig(level=logging.WARNING)
ROOT = Path("/tmp/q15c")
suite = {e["name"]: e for e in B.load_suite()}


def main():
    seeds = [int(s) for s in sys.argv[1].split(",")]
    for name in sys.argv[2:]:
        data = pickle.load(open(ROOT / name / "pooled.pkl", "rb"))
        spec, label = data["spec"], suite[name]["label"]
        table = pa.concat_tables([pq.read_table(ROOT / name / "data" / s / "data.parquet") for s in ("Split-train", "Split-eval")])
        lab = table.column(label).to_pylist()
        def text(v):  # a class as kfpc's classes spell it (booleans and integral numbers as integers)
            if isinstance(v, bool) or (isinstance(v, float) and v.is_integer()):
                v = int(v)
            return str(v)

        keep = [i for i, v in enumerate(lab) if v is not None and not (isinstance(v, float) and np.isnan(v))
                and (spec.label.task == "regression" or text(v) in set(map(str, spec.label.classes)))]
        assert len(keep) == len(data["target"]), (name, len(keep), len(data["target"]))
        table = table.take(pa.array(keep))
        for seed in seeds:
            out = ROOT / name / f"dnn_{seed}.pkl"
            if out.exists():
                continue
            tr_all, ev, tr, va = Q.split(data, seed)
            work = Path(tempfile.mkdtemp(prefix=f"q15dnn-{name}-"))
            for split, idx in (("Split-train", tr_all), ("Split-eval", ev)):
                (work / "data" / split).mkdir(parents=True)
                pq.write_table(table.take(pa.array(idx)), work / "data" / split / "data.parquet")
            t = time.time()
            result = core.train(work / "data", work / "model", label=label, statistics_dir=ROOT / name / "statistics",
                                model_family="dnn", verbose=0)
            seconds = time.time() - t
            predictor = load_predictor(work / "model")
            res = {"validation": result.metrics["validation"], "seconds": seconds}
            for key, idx in (("pred", ev), ("valid_pred", va)):
                o = predictor.predict({f.name: data["inputs"][f.input][idx] for f in result.spec.features})
                res[key] = o["predictions"].astype(np.float64) if spec.label.task == "regression" else o["probabilities"].astype(np.float64)
            pickle.dump(res, open(out, "wb"))
            shutil.rmtree(work, ignore_errors=True)
            print(name, seed, round(seconds, 1), flush=True)


if __name__ == "__main__":
    main()
