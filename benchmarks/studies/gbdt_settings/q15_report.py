"""Issue 15 study: summarise /tmp/q15c/<table>/trees_<seed>.pkl (and dnn_<seed>.pkl): per candidate and table,
mean (and spread, worst seed) of primary(candidate) - primary(LightGBM defaults) over the random seeds."""
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/q15c")


def primary(task, y, p):
    if task == "regression":
        return 1 - ((p - y) ** 2).mean() / y.var()
    return float((p.argmax(1) == y).mean())


def logloss(task, y, p):
    if task == "regression":
        return float(((p - y) ** 2).mean())
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1)).mean())


def load(name, seeds):
    task = pickle.load(open(ROOT / name / "pooled.pkl", "rb"))["task"]
    runs = []
    for s in seeds:
        f = ROOT / name / f"trees_{s}.pkl"
        if f.exists():
            r = pickle.load(open(f, "rb"))
            d = ROOT / name / f"dnn_{s}.pkl"
            if d.exists():
                dn = pickle.load(open(d, "rb"))
                r["pred"]["dnn"] = dn["pred"]; r["dnn_valid"] = dn["validation"]
            f2 = ROOT / name / f"trees2_{s}.pkl"
            if f2.exists():
                r2 = pickle.load(open(f2, "rb"))
                for key in ("pred", "valid_pred", "trees", "seconds"):
                    r[key].update({c: v for c, v in r2[key].items() if c not in r[key]})
            r["seed"] = s
            runs.append(r)
    return task, runs


def per_row_loss(task, y, p):
    if task == "regression":
        return (p - y) ** 2
    return -np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1))


def auto_rules(task, r, g, refit=None):
    """Eval predictions of auto rules with GBDT candidate ``g`` (validation predictions of ``g``; eval predictions of
    ``refit`` when given: the refit model is what would be exported) and the DNN."""
    lg = per_row_loss(task, r["y_valid"], r["valid_pred"][g])
    ld = per_row_loss(task, r["y_valid"], r["dnn_valid_pred"])
    pg, pd_ = r["pred"][refit or g], r["pred"]["dnn"]
    diff = ld - lg  # < 0: DNN better on validation
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    return {
        "auto": pd_ if diff.mean() < 0 else pg,
        "auto_margin1se": pd_ if diff.mean() < -se else pg,
        "auto_margin2se": pd_ if diff.mean() < -2 * se else pg,
        "blend": (pg + pd_) / 2,
    }


def auto_table(names, seeds, gbdt_candidates):
    table = {}
    for name in names:
        task, runs = load(name, seeds)
        runs = [r for r in runs if "dnn" in r["pred"]]
        for r in runs:
            r["dnn_valid_pred"] = pickle.load(open(ROOT / name / f"dnn_{r['seed']}.pkl", "rb"))["valid_pred"]
        if not runs:
            continue
        for g, refit in gbdt_candidates:
            for rule in ("auto", "auto_margin1se", "auto_margin2se", "blend"):
                d = np.array([primary(task, r["y_eval"], auto_rules(task, r, g, refit)[rule]) -
                              primary(task, r["y_eval"], r["pred"]["lightgbm"]) for r in runs])
                table.setdefault(f"{rule}[{refit or g}]", {})[name] = (d.mean(), d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0, d.min(), len(d))
        d = np.array([primary(task, r["y_eval"], r["pred"]["dnn"]) - primary(task, r["y_eval"], r["pred"]["lightgbm"]) for r in runs])
        table.setdefault("dnn", {})[name] = (d.mean(), d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0, d.min(), len(d))
    return table


if __name__ == "__main__":
    seeds = [int(s) for s in sys.argv[1].split(",") if s] if "," in sys.argv[1] else list(range(int(sys.argv[1])))
    names = [a for a in sys.argv[2:] if not a.startswith("--")]
    table = {}
    for name in names:
        task, runs = load(name, seeds)
        if not runs:
            continue
        cands = [c for c in runs[0]["pred"] if all(c in r["pred"] for r in runs)]
        for c in cands:
            d = np.array([primary(task, r["y_eval"], r["pred"][c]) - primary(task, r["y_eval"], r["pred"]["lightgbm"]) for r in runs])
            table.setdefault(c, {})[name] = (d.mean(), d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0, d.min(), len(d))
    print("mean diff vs lightgbm defaults (primary), ±s.e., [worst seed], n seeds")
    print(f"{'candidate':22s}" + "".join(f"{n[:14]:>26s}" for n in names) + f"{'avg':>8s}")
    for c, row in table.items():
        cells = "".join(f"{row[n][0]:+.4f}±{row[n][1]:.4f}[{row[n][2]:+.3f}]".rjust(26) if n in row else " " * 26 for n in names)
        print(f"{c:22s}{cells}{np.mean([row[n][0] for n in row]):+8.4f}")
    if "--auto" in sys.argv:
        pairs = [("cur", None), ("lgbmlike", "lgbmlike_refit"), ("lgbmlike_s05", "lgbmlike_s05_refit09"),
                 ("cur_me20", "cur_me20_refit09")]
        auto = auto_table(names, seeds, pairs)
        print("\nauto rules (DNN vs GBDT candidate): mean diff vs lightgbm defaults")
        for c, row in auto.items():
            cells = "".join(f"{row[n][0]:+.4f}±{row[n][1]:.4f}[{row[n][2]:+.3f}]".rjust(26) if n in row else " " * 26 for n in names)
            print(f"{c[:34]:34s}{cells}{np.mean([row[n][0] for n in row]):+8.4f}")
