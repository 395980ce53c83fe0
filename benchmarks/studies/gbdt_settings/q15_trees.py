"""Issue 15 study: YDF GBDT candidates vs LightGBM defaults over repeated random train/eval splits.

Usage: q15_trees.py SEEDS TABLE... ; writes /tmp/q15c/<table>/trees_<seed>.pkl (eval predictions of every
candidate, validation-part predictions, tree counts, seconds). Seed -1 is kfpc's own hash split.
YDF uses 2 threads, as kfpc does on this 2-core machine (YDF GBT results depend on the thread count:
college on kfpc's split: 1 thread 29 trees, accuracy 0.926; 2 threads 28 trees, 0.914).
Split: eval = 20% random rows; train = the rest, in permuted order; the validation part is kfpc's
Carve(len(train), 0.1, 42) of that order (as core.train would carve a Split-train file in that order).
"""
import math
import pickle
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import ydf

from kfpc.components.train import features as F
from kfpc.components.train import gbdt
from kfpc.components.train import input as data_input

ydf.verbose(0)
ROOT = Path("/tmp/q15c")


def split(data, seed):
    n = len(data["target"])
    if seed < 0:
        train_idx, eval_idx = np.arange(data["n_train"]), np.arange(data["n_train"], n)
    else:
        perm = np.random.default_rng(1000 + seed).permutation(n)
        n_eval = int(round(0.2 * n))
        eval_idx, train_idx = perm[:n_eval], perm[n_eval:]
    carve = data_input.Carve(len(train_idx), 0.1, 42)
    mask = carve.validation_mask(0, len(train_idx))
    return train_idx, eval_idx, train_idx[~mask], train_idx[mask]


def pandas_frames(spec, frame, fit_idx, others):
    fit = pd.DataFrame({k: v[fit_idx] for k, v in frame.items()})
    rest = [pd.DataFrame({k: v[i] for k, v in frame.items()}) for i in others]
    for c in gbdt.columns_of(spec):
        if c.categorical:
            cats = sorted(set(fit[c.name]) - {""})
            for d in [fit] + rest:
                d[c.name] = pd.Categorical(d[c.name].where(d[c.name] != ""), cats)
    return fit, rest


def lgbm(task, k, xf, yf, xs, valid=None):
    common = {"random_state": 0, "verbose": -1, "n_jobs": 1}
    if valid is not None:
        common["n_estimators"] = 2000
    m = lgb.LGBMRegressor(**common) if task == "regression" else lgb.LGBMClassifier(**common)
    kw = {"eval_set": [valid], "callbacks": [lgb.early_stopping(50, verbose=False)]} if valid is not None else {}
    m.fit(xf, yf, **kw)
    out = []
    for x in xs:
        if task == "regression":
            out.append(m.predict(x))
        else:
            p = np.zeros((len(x), k)); p[:, m.classes_.astype(int)] = m.predict_proba(x); out.append(p)
    return out, (m.best_iteration_ if valid is not None else 100)


BASE = dict(num_trees=2000, max_depth=6, shrinkage=0.1, min_examples=5, early_stopping_num_trees_look_ahead=30,
            max_vocab_count=255)
LGBMLIKE = dict(BASE, growing_strategy="BEST_FIRST_GLOBAL", max_num_nodes=31, min_examples=20, use_hessian_gain=True)
CANDIDATES = {
    "cur": BASE,
    "bestfirst": dict(BASE, growing_strategy="BEST_FIRST_GLOBAL"),  # YDF's better_default@v1
    "lgbmlike": LGBMLIKE,
    "lgbmlike_l2": dict(LGBMLIKE, l2_regularization=1.0),
    "lgbmlike_s05": dict(LGBMLIKE, shrinkage=0.05),
    "cur_s05": dict(BASE, shrinkage=0.05),
    "cur_me20": dict(BASE, min_examples=20, use_hessian_gain=True),
}
REFIT = ("cur", "lgbmlike", "lgbmlike_s05", "cur_s05", "cur_me20", "bestfirst")
FIXED = {"cur_fixed100": dict(BASE, num_trees=100), "lgbmlike_fixed100": dict(LGBMLIKE, num_trees=100)}
CV_OF = ("cur", "lgbmlike")
import os

SET = os.environ.get("Q15_SET", "")  # "2": a second batch of candidates, written to trees2_<seed>.pkl
if SET == "2":
    CANDIDATES = {
        "me20": dict(BASE, min_examples=20),
        "hess": dict(BASE, use_hessian_gain=True),
        "lgbm61": dict(LGBMLIKE, max_num_nodes=61, max_depth=16),
        "lgbm61_s05": dict(LGBMLIKE, max_num_nodes=61, max_depth=16, shrinkage=0.05),
        "cur_me20_s05": dict(BASE, min_examples=20, use_hessian_gain=True, shrinkage=0.05),
        "lgbmlike_s05_l2": dict(LGBMLIKE, shrinkage=0.05, l2_regularization=1.0),
    }
    REFIT = tuple(CANDIDATES)
    FIXED = {"lgbm61_fixed100": dict(LGBMLIKE, max_num_nodes=61, max_depth=16, num_trees=100)}
    CV_OF = ("lgbmlike_s05",)
    CANDIDATES["lgbmlike_s05"] = dict(LGBMLIKE, shrinkage=0.05)  # for its CV (its ES run repeats set 1's)


def learner(spec, hp, **extra):
    task = ydf.Task.REGRESSION if spec.label.task == F.REGRESSION else ydf.Task.CLASSIFICATION
    cols = gbdt.columns_of(spec)
    return ydf.GradientBoostedTreesLearner(
        label=gbdt.LABEL_COLUMN, task=task,
        features=[(c.name, ydf.Semantic.CATEGORICAL if c.categorical else ydf.Semantic.NUMERICAL) for c in cols],
        include_all_columns=False, label_classes=None if task == ydf.Task.REGRESSION else list(spec.label.classes),
        random_seed=42, num_threads=2, **hp, **extra)


def predict(model, ds, spec):
    raw = np.asarray(model.predict(ds), dtype=np.float64)
    if spec.label.task == F.REGRESSION:
        return raw.reshape(-1)
    classes = list(model.label_classes())
    if raw.ndim == 1:
        raw = np.stack([1 - raw, raw], axis=1)
    return raw[:, [classes.index(c) for c in spec.label.classes]]


def main():
    seeds = [int(s) for s in sys.argv[1].split(",")]
    for name in sys.argv[2:]:
        data = pickle.load(open(ROOT / name / "pooled.pkl", "rb"))
        spec, task = data["spec"], data["task"]
        k = len(spec.label.classes or [])
        frame = gbdt.ydf_frame(data["inputs"], spec)
        frame[gbdt.LABEL_COLUMN] = gbdt._label_column(data["target"], spec)
        y = data["target"]
        for seed in seeds:
            out_path = ROOT / name / f"trees{SET}_{seed}.pkl"
            if out_path.exists():
                continue
            tr_all, ev, tr, va = split(data, seed)
            ds = lambda idx: {kk: v[idx] for kk, v in frame.items()}
            res = {"y_eval": y[ev], "y_valid": y[va], "eval_idx": ev, "train_idx": tr_all, "pred": {}, "valid_pred": {},
                   "trees": {}, "seconds": {}}
            xf, (xe,) = pandas_frames(spec, {kk: v for kk, v in frame.items() if kk != gbdt.LABEL_COLUMN}, tr_all, [ev])
            t = time.time(); (p,), _ = lgbm(task, k, xf, y[tr_all], [xe]); res["seconds"]["lightgbm"] = time.time() - t
            res["pred"]["lightgbm"] = p
            xt, (xe2, xv) = pandas_frames(spec, {kk: v for kk, v in frame.items() if kk != gbdt.LABEL_COLUMN}, tr, [ev, va])
            t = time.time(); (p, pv), it = lgbm(task, k, xt, y[tr], [xe2, xv], valid=(xv, y[va]))
            res["seconds"]["lightgbm_es"] = time.time() - t
            res["pred"]["lightgbm_es"], res["valid_pred"]["lightgbm_es"], res["trees"]["lightgbm_es"] = p, pv, it
            d_tr, d_va, d_ev, d_all = ds(tr), ds(va), ds(ev), ds(tr_all)
            for cname, hp in CANDIDATES.items():
                t = time.time()
                m = learner(spec, hp).train(d_tr, valid=d_va)
                res["seconds"][cname] = time.time() - t
                iters = m.num_trees() // max(1, m.num_trees_per_iteration())
                res["pred"][cname], res["valid_pred"][cname], res["trees"][cname] = predict(m, d_ev, spec), predict(m, d_va, spec), iters
                if cname in REFIT:
                    for scale, tag in ((1.0, "refit"), (1 / 0.9, "refit09")):
                        t = time.time()
                        n = max(1, int(math.ceil(iters * scale)))
                        m2 = learner(spec, dict(hp, num_trees=n), early_stopping="NONE", validation_ratio=0.0).train(d_all)
                        res["seconds"][f"{cname}_{tag}"] = res["seconds"][cname] + time.time() - t
                        res["pred"][f"{cname}_{tag}"], res["trees"][f"{cname}_{tag}"] = predict(m2, d_ev, spec), n
            for cname, hp in FIXED.items():
                t = time.time()
                m = learner(spec, hp, early_stopping="NONE", validation_ratio=0.0).train(d_all)
                res["seconds"][cname] = time.time() - t
                res["pred"][cname], res["trees"][cname] = predict(m, d_ev, spec), 100
            # 5-fold CV on all train rows for the tree count (mean best iteration), refit on all rows
            for cname in CV_OF:
                hp = CANDIDATES[cname]
                t = time.time()
                folds = np.random.default_rng(seed + 7).permutation(len(tr_all)) % 5
                best = []
                for f in range(5):
                    m = learner(spec, hp).train(ds(tr_all[folds != f]), valid=ds(tr_all[folds == f]))
                    best.append(m.num_trees() // max(1, m.num_trees_per_iteration()))
                n = max(1, int(round(np.mean(best))))
                m2 = learner(spec, dict(hp, num_trees=n), early_stopping="NONE", validation_ratio=0.0).train(d_all)
                res["seconds"][f"{cname}_cv5"] = time.time() - t
                res["pred"][f"{cname}_cv5"], res["trees"][f"{cname}_cv5"] = predict(m2, d_ev, spec), n
            pickle.dump(res, open(out_path, "wb"))
            print(name, seed, SET, res["trees"], flush=True)


if __name__ == "__main__":
    main()
