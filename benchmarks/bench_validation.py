"""Benchmark: kfpc statistics vs TFDV 1.16.1 (DataFrame path) vs a bare pyarrow read; peak RSS.

Run: ``.venv/bin/python benchmarks/bench_validation.py [--quick]``. Writes
``benchmarks/results/validation.json`` and ``benchmarks/results/validation.png``.

Per size (100k, 1M, 5M rows of the seeded synthetic table; ``--quick``: 100k only): our statistics time
from the Parquet file (read included), TFDV's ``generate_statistics_from_dataframe`` time on an
in-memory DataFrame (read and import excluded) in its own venv, and the time of ``pyarrow.parquet.read_table``
(the floor). Peak RSS of a fresh process computing our statistics at 1M and 10M rows (``--quick``: 100k).
Goals: >= 10x faster than TFDV at 1M rows, within 3x of the bare read, 10M rows under 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synthetic  # noqa: E402

RESULTS = HERE / "results"
_RSS_SCRIPT = """
import resource, sys, time
from kfpc.components.statistics import core
start = time.perf_counter()
stats = core.generate_statistics(sys.argv[1])
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="kfpc validation benchmark")
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args(argv)
    import pyarrow.parquet as pq

    from kfpc.components.statistics import core

    sizes = [100_000] if options.quick else [100_000, 1_000_000, 5_000_000]
    rss_sizes = [100_000] if options.quick else [1_000_000, 10_000_000]
    work = Path(tempfile.mkdtemp(prefix="kfpc-bench-"))
    sys.path.insert(0, str(HERE))
    from parity_tfdv import run_peer, tfdv_python

    python, reason = tfdv_python()
    rows_out = []
    for rows in sizes:
        path = synthetic.write_parquet(work / f"data_{rows}.parquet", rows, seed=0)
        repeat = 3 if rows <= 1_000_000 else 1
        read = best_of(lambda p=path: pq.read_table(p), repeat)
        ours = best_of(lambda p=path: core.generate_statistics(p), repeat)
        entry = {"rows": rows, "kfpc_seconds": ours, "bare_read_seconds": read, "ratio_to_read": ours / read}
        if python is not None:
            peer = run_peer(python, {"statistics": [{"parquet": path, "output": str(work / "tfdv.pb")}]})
            entry["tfdv_seconds"] = peer["seconds"][path]
            entry["speedup_vs_tfdv"] = entry["tfdv_seconds"] / ours
        rows_out.append(entry)
        print(json.dumps(entry))
    rss = []
    for rows in rss_sizes:
        path = work / f"rss_{rows}.parquet"
        if not path.exists():
            synthetic.write_parquet(path, rows, seed=0)
        done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path)], capture_output=True, text=True,
                              check=True)
        seconds, peak = done.stdout.split()
        rss.append({"rows": rows, "seconds": float(seconds), "peak_rss_bytes": int(peak),
                    "peak_rss_gib": int(peak) / 2**30})
        print(json.dumps(rss[-1]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"quick": options.quick, "tfdv": reason or "TFDV 1.16.1 generate_statistics_from_dataframe",
              "timings": rows_out, "memory": rss}
    (RESULTS / "validation.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / "validation.png")
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    return 0


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    rows = [t["rows"] for t in result["timings"]]
    left.plot(rows, [t["kfpc_seconds"] for t in result["timings"]], "o-", label="kfpc statistics (from Parquet)")
    left.plot(rows, [t["bare_read_seconds"] for t in result["timings"]], "s--", label="bare pyarrow read")
    if all("tfdv_seconds" in t for t in result["timings"]):
        left.plot(rows, [t["tfdv_seconds"] for t in result["timings"]], "^-", label="TFDV 1.16.1 (DataFrame)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("rows (12 columns)")
    left.set_ylabel("seconds")
    left.legend()
    left.set_title("statistics time")
    right.bar([f"{m['rows']:,}" for m in result["memory"]], [m["peak_rss_gib"] for m in result["memory"]])
    right.axhline(1.5, color="red", linestyle="--", label="goal 1.5 GiB")
    right.set_ylabel("peak RSS (GiB)")
    right.set_title("kfpc statistics peak RSS")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
