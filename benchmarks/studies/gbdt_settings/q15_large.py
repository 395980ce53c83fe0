"""Issue 15 study: the GBDT candidates on kfpc's own split of the larger tables (one fit each, timed).
Usage: q15_large.py TABLE... ; prints eval primary metric, trees and seconds per candidate and writes
/tmp/q15c/<table>/large.json."""
import json
import math
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import q15_trees as Q

from kfpc.components.train import gbdt

BASE, LGBMLIKE = Q.BASE, Q.LGBMLIKE
CANDS = {"cur": BASE, "cur_me20": dict(BASE, min_examples=20, use_hessian_gain=True),
         "lgbmlike": LGBMLIKE, "lgbmlike_s05": dict(LGBMLIKE, shrinkage=0.05)}
import os

ONLY = [c for c in os.environ.get("Q15_ONLY", "").split(",") if c]  # e.g. flights: only cur_me20, no refit
if ONLY:
    CANDS = {c: CANDS[c] for c in ONLY}
for name in sys.argv[1:]:
    data = pickle.load(open(Q.ROOT / name / "pooled.pkl", "rb"))
    spec, task, y = data["spec"], data["task"], data["target"]
    k = len(spec.label.classes or [])
    frame = gbdt.ydf_frame(data["inputs"], spec)
    frame[gbdt.LABEL_COLUMN] = gbdt._label_column(y, spec)
    tr_all, ev, tr, va = Q.split(data, -1)
    ds = lambda idx: {kk: v[idx] for kk, v in frame.items()}
    d_tr, d_va, d_ev, d_all = ds(tr), ds(va), ds(ev), ds(tr_all)

    def score(p):
        return float(1 - ((p - y[ev]) ** 2).mean() / y[ev].var()) if task == "regression" else float((p.argmax(1) == y[ev]).mean())

    out = {}
    feats = {kk: v for kk, v in frame.items() if kk != gbdt.LABEL_COLUMN}
    if not ONLY:
        xf, (xe,) = Q.pandas_frames(spec, feats, tr_all, [ev])
        t = time.time(); (p,), _ = Q.lgbm(task, k, xf, y[tr_all], [xe]); out["lightgbm"] = (score(p), 100, time.time() - t)
        print(name, "lightgbm", out["lightgbm"], flush=True)
    for c, hp in CANDS.items():
        t = time.time()
        m = Q.learner(spec, hp).train(d_tr, valid=d_va)
        s1 = time.time() - t
        it = m.num_trees() // max(1, m.num_trees_per_iteration())
        out[c] = (score(Q.predict(m, d_ev, spec)), it, s1)
        print(name, c, out[c], flush=True)
        if c in ("cur_me20", "lgbmlike") and not ONLY:
            n = int(math.ceil(it / 0.9)); t = time.time()
            m2 = Q.learner(spec, dict(hp, num_trees=n), early_stopping="NONE", validation_ratio=0.0).train(d_all)
            out[c + "_refit09"] = (score(Q.predict(m2, d_ev, spec)), n, s1 + time.time() - t)
            print(name, c + "_refit09", out[c + "_refit09"], flush=True)
    json.dump(out, open(Q.ROOT / name / f"large{'_' + '_'.join(ONLY) if ONLY else ''}.json", "w"), indent=1)
