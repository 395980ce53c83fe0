"""Benchmark: kfpc statistics vs TFDV 1.16.1 (DataFrame path) vs a bare pyarrow read; peak RSS.

Run: ``.venv/bin/python benchmarks/bench_validation.py [--quick]``. Writes
``benchmarks/results/validation.json`` and ``benchmarks/results/validation.png``.

Per size (100k, 1M, 5M rows of the seeded synthetic table; ``--quick``: 100k only), in blocks of
back-to-back runs (``--repeat``, default 3), each block after one untimed warm-up run: our statistics
from the Parquet file (read included) with the default threads (a worker per core, at most 4) and with
``threads=1``; ``pyarrow.parquet.read_table`` (the floor, using all cores); and TFDV's
``generate_statistics_from_dataframe`` on an in-memory DataFrame (read and conversion to pandas excluded)
in a TFDV process kept running beside this one. The blocks of both tools alternate twice (once at 5M rows,
with one TFDV run: ~8 s each), so that a change in the machine's speed (it shares its cores) lands on
both; reported are the medians over all runs and the speed-up per pair of blocks. (Alternating single
runs instead was unfair to whichever ran right after the other tool: this VM runs the first work after
a switch or a pause up to 4x slower.) Peak RSS (``VmHWM`` of a fresh process, i.e. its
own high-water mark, plus its RSS after imports) computing our statistics at 1M and 10M rows
(``--quick``: 100k). The machine's load average is recorded with each size and each block, the spread over
blocks (each block's median, and kfpc / read per block), and beside the wall time the CPU seconds of all
threads and the minor page faults per run: on a shared machine the wall time moves with the neighbours.
Goals: >= 10x faster than TFDV at 1M rows, within 3x of the bare read, 10M rows under 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
ROUNDS = 2
# ru_maxrss would be wrong here: Linux carries the parent's high-water mark across fork+exec, so a child of a
# big benchmark process reports the parent's RSS. VmHWM belongs to the child's own address space.
_RSS_SCRIPT = """
import sys, time

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

from kfpc.components.statistics import core
imported = status("VmRSS")
start = time.perf_counter()
stats = core.generate_statistics(sys.argv[1])
print(time.perf_counter() - start, status("VmHWM"), imported)
"""


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class TfdvPeer:
    """TFDV in its own venv, kept running: ``seconds(path, n)`` times n back-to-back statistics runs on a file."""

    def __init__(self, python: str):
        self.process = subprocess.Popen([python, str(HERE / "_tfdv_peer.py"), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"TFDV peer exited with {self.process.wait()}")
        return json.loads(line)

    def seconds(self, path: Path, repeat: int = 1) -> list[float]:
        self.process.stdin.write(json.dumps({"parquet": str(path), "repeat": repeat}) + "\n")
        self.process.stdin.flush()
        return self._answer()["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="kfpc validation benchmark")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="back-to-back runs per block (medians are reported)")
    options = parser.parse_args(argv)
    import pyarrow.parquet as pq

    from kfpc.components.statistics import core

    sizes = [100_000] if options.quick else [100_000, 1_000_000, 5_000_000]
    rss_sizes = [100_000] if options.quick else [1_000_000, 10_000_000]
    work = Path(tempfile.mkdtemp(prefix="kfpc-bench-"))
    from parity_tfdv import tfdv_python

    python, reason = tfdv_python()
    peer = TfdvPeer(python) if python is not None else None
    repeat = max(1, options.repeat)
    rows_out = []
    core.generate_statistics(synthetic.make_table(1000))  # warm-up: lazy imports inside pyarrow/numpy
    for rows in sizes:
        path = synthetic.write_parquet(work / f"data_{rows}.parquet", rows, seed=0)
        load_before = os.getloadavg()[0]
        runs: dict[str, list[float]] = {"kfpc": [], "kfpc_single_thread": [], "bare_read": []}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        faults: dict[str, list[int]] = {name: [] for name in runs}
        block_loads = []
        if peer is not None:
            runs["tfdv"] = []
        blocks = ROUNDS if rows <= 1_000_000 else 1
        for _ in range(blocks):
            block_loads.append(round(os.getloadavg()[0], 2))
            # a block of back-to-back runs per tool, after an untimed warm-up run; blocks alternate
            for name, run in (("bare_read", lambda p=path: pq.read_table(p)),
                              ("kfpc", lambda p=path: core.generate_statistics(p)),
                              ("kfpc_single_thread", lambda p=path: core.generate_statistics(p, threads=1))):
                run()
                for _ in range(repeat):
                    # CPU seconds (all threads) and minor page faults beside the wall time: on a shared machine
                    # the wall time moves with the neighbours, the CPU time much less
                    before_cpu, before_faults = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                    runs[name].append(timed(run))
                    cpu[name].append(time.process_time() - before_cpu)
                    faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before_faults)
            if peer is not None:
                runs["tfdv"].extend(peer.seconds(path, repeat if rows <= 1_000_000 else 1))
        ours, single, read = (statistics.median(runs[k]) for k in ("kfpc", "kfpc_single_thread", "bare_read"))
        entry = {"rows": rows, "kfpc_seconds": ours, "kfpc_threads": core._default_threads(),
                 "kfpc_single_thread_seconds": single, "bare_read_seconds": read, "ratio_to_read": ours / read,
                 "single_thread_ratio_to_read": single / read, "runs": runs}
        if peer is not None:
            entry["tfdv_seconds"] = statistics.median(runs["tfdv"])
            entry["speedup_vs_tfdv"] = entry["tfdv_seconds"] / ours
            entry["single_thread_speedup_vs_tfdv"] = entry["tfdv_seconds"] / single
            tfdv_block, kfpc_block = len(runs["tfdv"]) // blocks, len(runs["kfpc"]) // blocks
            entry["speedup_vs_tfdv_by_block"] = [
                statistics.median(runs["tfdv"][i * tfdv_block:(i + 1) * tfdv_block])
                / statistics.median(runs["kfpc"][i * kfpc_block:(i + 1) * kfpc_block]) for i in range(blocks)]
        entry["load_average"] = [load_before, os.getloadavg()[0]]
        entry["load_average_per_block"] = block_loads
        entry["cpu_seconds"] = {name: statistics.median(v) for name, v in cpu.items()}
        entry["cpu_ratio_to_read"] = entry["cpu_seconds"]["kfpc"] / entry["cpu_seconds"]["bare_read"]
        entry["minor_page_faults"] = {name: statistics.median(v) for name, v in faults.items()}
        # spread over blocks: the median of each block, per tool, and kfpc / read per block
        per_block = len(runs["kfpc"]) // blocks
        entry["block_medians"] = {name: [statistics.median(runs[name][i * per_block:(i + 1) * per_block])
                                         for i in range(blocks)] for name in ("kfpc", "kfpc_single_thread", "bare_read")}
        entry["ratio_to_read_by_block"] = [k / r for k, r in zip(entry["block_medians"]["kfpc"],
                                                                entry["block_medians"]["bare_read"], strict=True)]
        rows_out.append(entry)
        print(json.dumps(entry))
    if peer is not None:
        peer.close()
    rss = []
    for rows in rss_sizes:
        path = work / f"rss_{rows}.parquet"
        if not path.exists():
            synthetic.write_parquet(path, rows, seed=0)
        done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path)], capture_output=True, text=True,
                              check=True)
        seconds, peak, imported = done.stdout.split()
        rss.append({"rows": rows, "seconds": float(seconds), "peak_rss_bytes": int(peak),
                    "peak_rss_gib": int(peak) / 2**30, "rss_after_import_bytes": int(imported),
                    "load_average": os.getloadavg()[0]})
        print(json.dumps(rss[-1]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"quick": options.quick, "repeat": repeat, "cpus": os.cpu_count(),
              "tfdv": reason or "TFDV 1.16.1 generate_statistics_from_dataframe",
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
    timings = result["timings"]
    rows = [t["rows"] for t in timings]
    left.plot(rows, [t["kfpc_seconds"] for t in timings], "o-", label="kfpc statistics (from Parquet)")
    left.plot(rows, [t["kfpc_single_thread_seconds"] for t in timings], "o:", label="kfpc, threads=1")
    left.plot(rows, [t["bare_read_seconds"] for t in timings], "s--", label="bare pyarrow read")
    if all("tfdv_seconds" in t for t in timings):
        left.plot(rows, [t["tfdv_seconds"] for t in timings], "^-", label="TFDV 1.16.1 (DataFrame)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("rows (12 columns)")
    left.set_ylabel("seconds (median of alternating runs)")
    left.legend()
    left.set_title("statistics time")
    right.bar([f"{m['rows']:,}" for m in result["memory"]], [m["peak_rss_gib"] for m in result["memory"]],
              label="peak RSS")
    right.bar([f"{m['rows']:,}" for m in result["memory"]],
              [m["rss_after_import_bytes"] / 2**30 for m in result["memory"]], label="after imports")
    right.axhline(1.5, color="red", linestyle="--", label="goal 1.5 GiB")
    right.set_ylabel("GiB")
    right.set_title("kfpc statistics memory (fresh process)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
