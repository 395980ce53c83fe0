"""Benchmark: sharded statistics — per-shard time and peak memory vs one pass, merge time vs shard count,
the projected wall time for 1B rows on 100 parallel pods, and ``validation_pipeline`` end to end through
kfp.local with 4 shards on the same table (unless ``--no-kfp-local`` or ``--quick``).

Run: ``.venv/bin/python benchmarks/bench_shards.py [--rows 1000000] [--no-kfp-local] [--quick]``. Writes
``benchmarks/results/shards.json``.

* One pass and single shards run in fresh processes (``VmHWM``: each its own peak RSS, as one pod would
  have), with ``threads=1`` (a pod of one core; the projection scales from it) and with the default threads.
* Merge time (read every accumulator file, merge, write ``FeatureStats.pb``) for 1, 2, 4, ..., 64 shards of
  the same table, median of ``--repeat`` runs.
* Projection: 1B rows on 100 pods = 10M rows a pod. Shard time = the per-row cost measured on shards
  (linear in rows: the sketches have a fixed size) × 10M, plus ``--pod-overhead`` seconds (image pull and
  start; an assumption, not measured here); merge = the merge time fitted linear in the shard count,
  at 100. Accumulator files do not grow with rows (fixed-size sketches), so the merge's input is the size
  measured here.
The machine is shared (2 cores, other jobs running): the load average is recorded with every figure and
CPU seconds beside wall seconds; treat single figures as noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synthetic  # noqa: E402

RESULTS = HERE / "results"
SHARD_COUNTS = (1, 2, 4, 8, 16, 32, 64)

_CHILD = """
import json, sys, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
from kfpc.components.statistics import core, shards
imported = status("VmRSS")
args = json.loads(sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
if args["shard"] is None:
    stats = core.generate_statistics(args["path"], threads=args["threads"])
    rows = stats.num_examples
else:
    rows = shards.shard_statistics(args["shard"], args["out"], threads=args["threads"])["rows"]
print(json.dumps({"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, "rows": rows,
                  "peak_rss_bytes": status("VmHWM"), "rss_after_import_bytes": imported}))
"""


def _child(args: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def _median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="kfpc sharded statistics benchmark")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pod-overhead", type=float, default=30.0,
                        help="seconds a pod needs before its shard starts (assumed, for the projection)")
    parser.add_argument("--no-kfp-local", dest="kfp_local", action="store_false",
                        help="skip validation_pipeline (4 shards) end to end in kfp.local")
    parser.add_argument("--quick", action="store_true", help="100k rows, one run each, no kfp.local run")
    options = parser.parse_args(argv)
    if options.quick:
        options.rows, options.repeat, options.kfp_local = 100_000, 1, False
    from kfpc.components.statistics import core, shards, wire

    work = Path(tempfile.mkdtemp(prefix="kfpc-bench-shards-"))
    try:
        path = work / "data.parquet"
        # 128 row groups so that every shard count up to 64 splits evenly
        table = synthetic.make_table(options.rows, seed=0)
        import pyarrow.parquet as pq

        pq.write_table(table, path, row_group_size=max(1, options.rows // 128))
        del table
        result: dict = {"rows": options.rows, "cpus": os.cpu_count(), "repeat": options.repeat}

        one_pass = {str(t): [_child({"path": str(path), "shard": None, "threads": t}) for _ in range(options.repeat)]
                    for t in (1, core._default_threads())}
        result["one_pass"] = {t: {"seconds": _median_of(r, "seconds"), "cpu_seconds": _median_of(r, "cpu_seconds"),
                                  "peak_rss_bytes": max(x["peak_rss_bytes"] for x in r), "runs": r}
                              for t, r in one_pass.items()}
        print(json.dumps({"one_pass": {t: {k: v for k, v in e.items() if k != "runs"}
                                       for t, e in result["one_pass"].items()}}))

        per_shard = {}
        for count in (4, 16):
            plan = shards.plan_shards(str(path), count)
            runs = []
            for shard in plan[:2]:  # two shards of each plan, each in its own process
                out = work / f"probe-{count}-{shard['index']}"
                runs.append(_child({"path": str(path), "shard": shard, "out": str(out), "threads": 1}))
                shutil.rmtree(out)
            per_shard[str(count)] = {
                "rows_per_shard": plan[0]["rows"], "seconds": _median_of(runs, "seconds"),
                "cpu_seconds": _median_of(runs, "cpu_seconds"),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
                "seconds_per_million_rows": 1e6 * _median_of(runs, "seconds") / plan[0]["rows"],
                "cpu_seconds_per_million_rows": 1e6 * _median_of(runs, "cpu_seconds") / plan[0]["rows"], "runs": runs}
            print(json.dumps({"shards": count, **{k: v for k, v in per_shard[str(count)].items() if k != "runs"}}))
        result["per_shard_threads_1"] = per_shard

        merges = []
        for count in SHARD_COUNTS:
            plan = shards.plan_shards(str(path), count)
            folders = []
            for shard in plan:
                folder = work / f"acc-{count}-{shard['index']}"
                shards.shard_statistics(shard, folder, threads=1)
                folders.append(folder)
            size = sum((f / wire.ACCUMULATOR_FILE).stat().st_size for f in folders)
            seconds = []
            for _ in range(options.repeat):
                out = work / f"merged-{count}"
                start = time.perf_counter()
                shards.merge_statistics(folders, out)
                seconds.append(time.perf_counter() - start)
                shutil.rmtree(out)
            merges.append({"shards": count, "seconds": statistics.median(seconds), "runs": seconds,
                           "accumulator_bytes_total": size, "accumulator_bytes_per_shard": size / count,
                           "load_average": round(os.getloadavg()[0], 2)})
            print(json.dumps(merges[-1]))
            for folder in folders:
                shutil.rmtree(folder)
        result["merge"] = merges

        # linear fit of the merge time in the shard count (least squares), for the projection
        xs, ys = [m["shards"] for m in merges], [m["seconds"] for m in merges]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        intercept = my - slope * mx
        # the larger shards' cost per row (the smallest carry more fixed cost per row)
        largest = per_shard[str(min(int(k) for k in per_shard))]
        per_row = largest["seconds_per_million_rows"] / 1e6
        per_row_cpu = largest["cpu_seconds_per_million_rows"] / 1e6
        rows_per_pod = 1_000_000_000 / 100
        shard_seconds = per_row * rows_per_pod
        merge_seconds = intercept + slope * 100
        result["projection_1b_rows_100_pods"] = {
            "rows_per_pod": rows_per_pod, "shard_seconds": shard_seconds, "pod_overhead_seconds": options.pod_overhead,
            "merge_seconds": merge_seconds, "merge_fit": {"intercept": intercept, "seconds_per_shard": slope},
            "wall_seconds": options.pod_overhead + shard_seconds + options.pod_overhead + merge_seconds,
            # on an idle core a pod's wall time is about its CPU time; on this shared machine wall >> CPU
            "shard_seconds_from_cpu": per_row_cpu * rows_per_pod,
            "wall_seconds_from_cpu": options.pod_overhead * 2 + per_row_cpu * rows_per_pod + merge_seconds,
            "load_average": round(os.getloadavg()[0], 2),
            "assumes": "one core per pod at this machine's per-row speed; every pod reads its 10M rows at local-disk "
                       "speed; pod start overhead as given (twice: shard wave, then merge)"}
        print(json.dumps({"projection": result["projection_1b_rows_100_pods"]}))

        if options.kfp_local:
            from kfpc.pipelines import local_run

            start = time.perf_counter()
            summary = local_run.run("validation_pipeline", {"source_uri": str(path), "num_shards": 4},
                                    work / "kfp-local-run")
            result["kfp_local_validation_pipeline_4_shards"] = {
                "status": summary.status, "seconds": time.perf_counter() - start,
                "tasks": {t.name: t.seconds for t in summary.tasks}, "load_average": round(os.getloadavg()[0], 2),
                "error": summary.error[:2000]}
            print(json.dumps({"kfp_local": result["kfp_local_validation_pipeline_4_shards"]}))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "shards.json").write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
