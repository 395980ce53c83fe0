"""Issue 15 study: bench_quality's paired bootstrap (vs LightGBM defaults) on kfpc's own split (seed -1) for the
candidates and auto rules named on the command line, every small table."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pickle

import bench_quality as B
import q15_report as R

names = ["iris", "hitters", "penguins_raw", "cars", "mroz", "college", "seattle_weather", "wage"]
cands = sys.argv[1:] or ["cur", "cur_me20_refit09", "lgbmlike_refit", "lgbmlike_fixed100"]
for name in names:
    task, runs = R.load(name, [-1])
    if not runs:
        continue
    r = runs[0]
    preds = dict(r["pred"])
    if "dnn" in preds:
        r["dnn_valid_pred"] = pickle.load(open(R.ROOT / name / "dnn_-1.pkl", "rb"))["valid_pred"]
        for g, refit in (("cur", None), ("cur_me20", "cur_me20_refit09"), ("lgbmlike", "lgbmlike_refit")):
            for rule, p in R.auto_rules(task, r, g, refit).items():
                preds[f"{rule}[{refit or g}]"] = p
    cells = []
    for c in cands:
        if c in preds:
            b = B.bootstrap_difference(task, r["y_eval"], preds[c], preds["lightgbm"])
            cells.append(f"{c}: {b['difference']:+.3f} [{b['low']:+.3f},{b['high']:+.3f}]{' WORSE' if b['worse'] else ''}")
    print(name, " | ".join(cells))
