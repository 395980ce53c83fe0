"""Parity of kfpc's statistics, schema and anomalies with TFDV 1.16.1 (the peer venv).

Run: ``.venv/bin/python benchmarks/parity_tfdv.py [--quick]``. Needs the peer venv built by
``../shared/peers/tfdv/setup.sh`` (exit code 3 there = no Python 3.10: this script then skips with the
reason). Writes ``benchmarks/results/parity_tfdv.json``; exit code 0 when every check holds.

Checks, on the seeded synthetic table (TFDV reads it as a DataFrame, we read the Parquet file):
counts, missing, min, max exactly equal, mean/std_dev within 1e-9 relative; our median and quantile
boundaries within the sketch's rank error bound of the truth (TFDV's within its own epsilon 0.01);
top values equal; our FeatureStats.pb loads with tfdv.load_stats_binary and our schema.pbtxt with
tfdv.load_schema_text; on data with injected problems both validators flag the same features with the
same reason types (and none on clean columns).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import statistics_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402

from kfpc.components.schema import core as schema_core  # noqa: E402
from kfpc.components.statistics import core as stats_core  # noqa: E402
from kfpc.components.validate import core as validate_core  # noqa: E402

HERE = Path(__file__).resolve().parent
#: the peer's setup, in the steering repository's shared folder beside this checkout
SETUP = HERE.parents[1] / "shared" / "peers" / "tfdv" / "setup.sh"
RESULTS = HERE / "results"


def tfdv_python() -> tuple[str | None, str]:
    """Path of the TFDV peer's python, or None and the reason."""
    if not SETUP.exists():
        return None, f"{SETUP} not found"
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"setup.sh exit {done.returncode}: {done.stderr.strip()[-300:]}"
    return done.stdout.strip().splitlines()[-1], ""


def run_peer(python: str, request: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request, handle)
    done = subprocess.run([python, str(HERE / "_tfdv_peer.py"), handle.name], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"TFDV peer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_statistics(ours, theirs, table: pa.Table) -> dict:
    """Feature-by-feature comparison; returns the list of mismatches and the measured errors."""
    mismatches, errors = [], {}
    theirs_by = {schema_core.feature_name(f): f for f in theirs.features}
    for feature in ours.features:
        name = schema_core.feature_name(feature)
        other = theirs_by.get(name)
        if other is None:
            mismatches.append(f"{name}: absent from TFDV's statistics")
            continue
        if feature.type != other.type:
            mismatches.append(f"{name}: type {feature.type} vs {other.type}")
        if feature.HasField("num_stats"):
            a, b = feature.num_stats, other.num_stats
            for field in ("num_non_missing", "num_missing", "tot_num_values"):
                if getattr(a.common_stats, field) != getattr(b.common_stats, field):
                    mismatches.append(f"{name}: {field} {getattr(a.common_stats, field)} vs {getattr(b.common_stats, field)}")
            for field in ("min", "max", "num_zeros"):
                if getattr(a, field) != getattr(b, field):
                    mismatches.append(f"{name}: {field} {getattr(a, field)} vs {getattr(b, field)}")
            for field in ("mean", "std_dev"):
                if not math.isclose(getattr(a, field), getattr(b, field), rel_tol=1e-9, abs_tol=1e-12):
                    mismatches.append(f"{name}: {field} {getattr(a, field)!r} vs {getattr(b, field)!r}")
            values = np.sort(table.column(name).drop_null().to_numpy().astype(float))
            bound = next((c.num for c in feature.custom_stats if c.name == stats_core.CUSTOM_QUANTILE_RANK_ERROR), 0)

            def rank(v, values=values):
                lo = np.searchsorted(values, v, side="left") / values.size
                hi = np.searchsorted(values, v, side="right") / values.size
                return lo, hi

            worst_ours = worst_theirs = 0.0
            for stats_, kind in ((a, "ours"), (b, "theirs")):
                q = next(h for h in stats_.histograms if h.type == statistics_pb2.Histogram.QUANTILES)
                for i, bucket in enumerate(q.buckets[:-1]):
                    target = (i + 1) / len(q.buckets)
                    lo, hi = rank(bucket.high_value)
                    err = 0.0 if lo <= target <= hi else min(abs(lo - target), abs(hi - target))
                    if kind == "ours":
                        worst_ours = max(worst_ours, err)
                    else:
                        worst_theirs = max(worst_theirs, err)
            errors[name] = {"quantile_rank_error_ours": worst_ours, "quantile_rank_error_tfdv": worst_theirs,
                            "bound_ours": bound}
            if worst_ours > bound + 1.0 / values.size:
                mismatches.append(f"{name}: quantile rank error {worst_ours} above bound {bound}")
        else:
            a, b = feature.string_stats, other.string_stats
            for field in ("num_non_missing", "num_missing"):
                if getattr(a.common_stats, field) != getattr(b.common_stats, field):
                    mismatches.append(f"{name}: {field} {getattr(a.common_stats, field)} vs {getattr(b.common_stats, field)}")
            if not math.isclose(a.avg_length, b.avg_length, rel_tol=1e-6):
                mismatches.append(f"{name}: avg_length {a.avg_length} vs {b.avg_length}")
            exact = any(c.name == stats_core.CUSTOM_TOP_K_EXACT and c.num == 1 for c in feature.custom_stats)
            # Beyond top_k distinct values both sides are sketches (Misra-Gries): compare the leading value
            # names only, and only where the leaders stand out (TFDV's sketch reports ties of noise otherwise).
            k = len(b.top_values)
            ours_top = [(v.value, v.frequency) for v in a.top_values[:k]]
            theirs_top = [(v.value, v.frequency) for v in b.top_values]
            if not exact:
                k = 3 if b.top_values and b.top_values[0].frequency > 2 * b.top_values[-1].frequency else 0
                ours_top, theirs_top = [v for v, _ in ours_top[:k]], [v for v, _ in theirs_top[:k]]
            if ours_top != theirs_top:
                mismatches.append(f"{name}: top values differ: {ours_top[:3]} vs {theirs_top[:3]}")
            errors[name] = {"unique_ours": a.unique, "unique_tfdv": b.unique,
                            "unique_true": int(pc_unique(table.column(name)))}
    return {"mismatches": mismatches, "errors": errors}


def pc_unique(column) -> int:
    import pyarrow.compute as pc

    return len(pc.unique(column.drop_null()))


def injected_frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    def frame(seed):
        rng = np.random.default_rng(seed)
        return pd.DataFrame({
            "category": rng.choice(["a", "b", "c"], rows), "level": rng.integers(0, 10, rows),
            "mostly_present": rng.normal(size=rows), "dropped": rng.normal(size=rows),
            "shifted": rng.normal(size=rows), "clean_int": rng.integers(0, 1000, rows),
            "clean_str": rng.choice(["x", "y"], rows)})

    baseline, current = frame(1), frame(2)
    current.loc[:20, "category"] = "zzz_unseen"
    current.loc[current.sample(frac=0.2, random_state=1).index, "mostly_present"] = np.nan
    current = current.drop(columns=["dropped"])
    current["shifted"] = current["shifted"] + 3.0
    current.loc[:5, "level"] = 42
    current.loc[6:8, "level"] = -3
    return baseline, current


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="kfpc vs TFDV parity")
    parser.add_argument("--quick", action="store_true", help="20k rows instead of 200k")
    parser.add_argument("--results", default=str(RESULTS), help="folder for parity_tfdv.json (tests use a temp one)")
    options = parser.parse_args(argv)
    results = Path(options.results)
    results.mkdir(parents=True, exist_ok=True)
    python, reason = tfdv_python()
    if python is None:
        print(f"SKIPPED: TFDV peer unavailable ({reason})")
        (results / "parity_tfdv.json").write_text(json.dumps({"skipped": reason}, indent=2))
        return 0
    rows = 20_000 if options.quick else 200_000
    work = Path(tempfile.mkdtemp(prefix="kfpc-parity-"))
    data = synthetic.write_parquet(work / "data.parquet", rows, seed=7)
    ours = stats_core.generate_statistics(data, "data")
    (work / "ours.pb").write_bytes(statistics_pb2.DatasetFeatureStatisticsList(datasets=[ours]).SerializeToString())
    schema = schema_core.infer_schema(ours)
    (work / "schema.pbtxt").write_text(text_format.MessageToString(schema))

    baseline, current = injected_frames(5_000)
    pq.write_table(pa.Table.from_pandas(baseline, preserve_index=False), work / "baseline.parquet")
    pq.write_table(pa.Table.from_pandas(current, preserve_index=False), work / "current.parquet")
    base_stats = stats_core.generate_statistics(work / "baseline.parquet", "baseline")
    cur_stats = stats_core.generate_statistics(work / "current.parquet", "current")
    # (min_domain_mass=None: TFDV's inference writes no distribution constraint, which ours adds by default)
    injected_schema = schema_core.infer_schema(base_stats, drift_comparators={"jensen_shannon_divergence": 0.1},
                                               min_domain_mass=None)
    level = next(f for f in injected_schema.feature if f.name == "level")
    level.int_domain.min, level.int_domain.max = 0, 9
    (work / "injected_schema.pbtxt").write_text(text_format.MessageToString(injected_schema))
    ours_anomalies = validate_core.reason_types(validate_core.validate(cur_stats, injected_schema, previous=base_stats))

    peer = run_peer(python, {
        "statistics": [{"parquet": str(data), "output": str(work / "tfdv.pb")},
                       {"parquet": str(work / "baseline.parquet"), "output": str(work / "tfdv_base.pb")},
                       {"parquet": str(work / "current.parquet"), "output": str(work / "tfdv_cur.pb")}],
        "load": [{"stats": str(work / "ours.pb"), "schema": str(work / "schema.pbtxt")}],
        "validate": [
            {"name": "tfdv_stats", "schema": str(work / "injected_schema.pbtxt"),
             "current": str(work / "tfdv_cur.pb"), "previous": str(work / "tfdv_base.pb")},
            {"name": "our_stats", "schema": str(work / "injected_schema.pbtxt"),
             "current": str(work / "ours_cur.pb"), "previous": str(work / "ours_base.pb")},
        ],
    } if _write_lists(work, base_stats, cur_stats) else {})
    theirs = statistics_pb2.DatasetFeatureStatisticsList()
    theirs.ParseFromString((work / "tfdv.pb").read_bytes())
    comparison = compare_statistics(ours, theirs.datasets[0], pq.read_table(data))
    tfdv_anomalies = {k: set(v) for k, v in peer["anomalies"]["tfdv_stats"].items()}
    tfdv_on_ours = {k: set(v) for k, v in peer["anomalies"]["our_stats"].items()}
    anomaly_match = ours_anomalies == tfdv_anomalies == tfdv_on_ours
    result = {
        "rows": rows,
        "statistics_mismatches": comparison["mismatches"],
        "errors": comparison["errors"],
        "tfdv_loaded_our_artifacts": peer["loaded"],
        "anomalies_ours": {k: sorted(v) for k, v in ours_anomalies.items()},
        "anomalies_tfdv": {k: sorted(v) for k, v in tfdv_anomalies.items()},
        "anomalies_tfdv_validating_our_statistics": {k: sorted(v) for k, v in tfdv_on_ours.items()},
        "anomalies_match": anomaly_match,
        "passed": not comparison["mismatches"] and anomaly_match and bool(peer["loaded"]),
    }
    (results / "parity_tfdv.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("rows", "statistics_mismatches", "anomalies_match", "passed")},
                     indent=2))
    if not anomaly_match:
        print("ours:", result["anomalies_ours"], "\ntfdv:", result["anomalies_tfdv"],
              "\ntfdv on our stats:", result["anomalies_tfdv_validating_our_statistics"])
    return 0 if result["passed"] else 1


def _write_lists(work: Path, base_stats, cur_stats) -> bool:
    for name, stats in (("ours_base.pb", base_stats), ("ours_cur.pb", cur_stats)):
        (work / name).write_bytes(statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats]).SerializeToString())
    return True


if __name__ == "__main__":
    sys.exit(main())
