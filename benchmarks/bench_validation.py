"""Benchmark: kfpc statistics vs a bare pyarrow read (and TFDV 1.16.1's DataFrame path); peak RSS.

Run: ``.venv/bin/python benchmarks/bench_validation.py [--quick] [--blocks N] [--layout L] [--tfdv skip]``. Writes
``benchmarks/results/validation.json`` and ``benchmarks/results/validation.png``.

Per size (100k, 1M, 5M rows of the seeded synthetic table; ``--quick``: 100k only), in blocks (``--blocks``,
default 4; 3 at 5M rows) of ``--repeat`` (default 5) timed runs per tool: ``pyarrow.parquet.read_table`` (the
floor, using all cores), our statistics from the Parquet file (read included) with the default threads (a
worker per core, at most 4) and with ``threads=1``. By default (``--layout interleaved``) a block is that many
rounds, each running every tool untimed (at least 0.1 s of its runs, at least one) and then once timed, so that
a slow spell of this shared VM (a second or two when a neighbour works, seen to slow one tool's 5 back-to-back
runs by 35%) lands on every tool of the block; the untimed runs before each timed one matter because this VM
runs the first work after a switch or a pause up to 4x slower (alternating single runs without them was unfair
to whichever ran right after the other tool). ``--layout back-to-back``, the layout of earlier results, runs
each tool's warm-up and 5 timed runs one after the other. The goal, kfpc <= 1.5x the bare read, is checked per
block (a block's medians): reported per size are the median of the per-block ratios, their spread (min, max),
whether every block met it, the load average at each block, and beside the wall times the CPU seconds of all
threads and the minor page faults per run. "Linear in rows": seconds per million rows per size, and the growth
from 1M to 5M rows divided by 5.

TFDV's ``generate_statistics_from_dataframe`` on an in-memory DataFrame (read and conversion to pandas
excluded) runs in a TFDV process kept running beside this one, once per block, when its peer venv exists
(``../shared/peers/tfdv/setup.sh``). ``--tfdv skip``, or a peer that cannot be built, keeps the TFDV figures
of the previous results file, labelled ``tfdv_previous`` with the note of where they came from: they are
not re-measured. Peak RSS (``VmHWM`` of a fresh process, i.e. its own high-water mark, plus its RSS after
imports) computing our statistics at 1M and 10M rows (``--quick``: 100k).
Goals: <= 1.5x the bare read at 1M and 5M rows in every block, linear in rows, 10M rows under 1.5 GiB.
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


GOAL_RATIO = 1.5
#: untimed runs of a tool before each of its timed runs in the interleaved layout last at least this long
WARM_UP_SECONDS = 0.1


def _median_blocks(values: list, blocks: int) -> list[float]:
    size = len(values) // blocks
    return [statistics.median(values[i * size:(i + 1) * size]) for i in range(blocks)]


def _previous_tfdv(path: Path) -> dict:
    """TFDV figures per size from an earlier results file (kept, labelled, when the peer is not run)."""
    if not path.exists():
        return {}
    previous = json.loads(path.read_text())
    found = {}
    for entry in previous.get("timings", []):
        figures = entry.get("tfdv_previous") or ({"tfdv_seconds": entry["tfdv_seconds"],
                                                  "source": previous.get("tfdv", "")}
                                                 if "tfdv_seconds" in entry else None)
        if figures:
            found[entry["rows"]] = figures
    return found


def measure(path: Path, rows: int, blocks: int, repeat: int, peer, layout: str = "interleaved") -> dict:
    """One size: blocks of read / kfpc / kfpc threads=1 runs (and TFDV), per-block figures and the goal check."""
    import pyarrow.parquet as pq

    from kfpc.components.statistics import core

    tools = {"bare_read": lambda: pq.read_table(path), "kfpc": lambda: core.generate_statistics(path),
             "kfpc_single_thread": lambda: core.generate_statistics(path, threads=1)}
    runs: dict[str, list[float]] = {name: [] for name in tools}
    cpu: dict[str, list[float]] = {name: [] for name in tools}
    faults: dict[str, list[int]] = {name: [] for name in tools}
    tfdv_runs: list[float] = []
    block_loads = []

    def warm_up(run) -> None:
        # untimed runs, at least WARM_UP_SECONDS of them: the first run after another tool's is slow on this VM,
        # and a short run (the read of 100k rows, ~10 ms) reaches its steady speed only after several
        start = time.perf_counter()
        run()
        while time.perf_counter() - start < WARM_UP_SECONDS:
            run()

    def timed_run(name: str) -> None:
        # CPU seconds (all threads) and minor page faults beside the wall time: on a shared machine the wall
        # time moves with the neighbours, the CPU time much less
        before_cpu, before_faults = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        runs[name].append(timed(tools[name]))
        cpu[name].append(time.process_time() - before_cpu)
        faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before_faults)

    for _ in range(blocks):
        block_loads.append(round(os.getloadavg()[0], 2))
        if layout == "interleaved":
            # rounds of (warm-up, timed run) per tool: a slow spell of the machine lands on every tool of the block
            for _ in range(repeat):
                for name, run in tools.items():
                    warm_up(run)
                    timed_run(name)
        else:
            for name, run in tools.items():
                run()  # untimed warm-up
                for _ in range(repeat):
                    timed_run(name)
        if peer is not None:
            tfdv_runs.extend(peer.seconds(path, repeat if rows <= 1_000_000 else 1))
    medians = {name: _median_blocks(values, blocks) for name, values in runs.items()}
    cpu_medians = {name: _median_blocks(values, blocks) for name, values in cpu.items()}
    by_block = [k / r for k, r in zip(medians["kfpc"], medians["bare_read"], strict=True)]
    single_by_block = [k / r for k, r in zip(medians["kfpc_single_thread"], medians["bare_read"], strict=True)]
    cpu_by_block = [k / r for k, r in zip(cpu_medians["kfpc"], cpu_medians["bare_read"], strict=True)]
    ours, single, read = (statistics.median(runs[k]) for k in ("kfpc", "kfpc_single_thread", "bare_read"))
    entry = {
        "rows": rows, "blocks": blocks, "repeat": repeat, "layout": layout, "kfpc_threads": core._default_threads(),
        "kfpc_seconds": ours, "kfpc_single_thread_seconds": single, "bare_read_seconds": read,
        # the goal's figure: kfpc / read per block (each block's medians), their median and spread
        "ratio_to_read": statistics.median(by_block), "ratio_to_read_by_block": by_block,
        "ratio_to_read_spread": [min(by_block), max(by_block)],
        "goal_ratio": GOAL_RATIO, "goal_met_every_block": all(r <= GOAL_RATIO for r in by_block),
        "single_thread_ratio_to_read": statistics.median(single_by_block),
        "single_thread_ratio_to_read_by_block": single_by_block,
        "load_average_per_block": block_loads,
        "block_medians": medians,
        "cpu_seconds": {name: statistics.median(v) for name, v in cpu.items()},
        "cpu_ratio_to_read": statistics.median(cpu_by_block), "cpu_ratio_to_read_by_block": cpu_by_block,
        "minor_page_faults": {name: statistics.median(v) for name, v in faults.items()},
        "seconds_per_million_rows": {name: statistics.median(v) / rows * 1e6 for name, v in runs.items()},
        "runs": runs,
    }
    if tfdv_runs:
        entry["tfdv_seconds"] = statistics.median(tfdv_runs)
        entry["speedup_vs_tfdv"] = entry["tfdv_seconds"] / ours
        entry["single_thread_speedup_vs_tfdv"] = entry["tfdv_seconds"] / single
        entry["speedup_vs_tfdv_by_block"] = [t / k for t, k in zip(_median_blocks(tfdv_runs, blocks),
                                                                    medians["kfpc"], strict=True)]
        runs["tfdv"] = tfdv_runs
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="kfpc validation benchmark")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="back-to-back runs per tool and block")
    parser.add_argument("--blocks", type=int, default=4, help="blocks per size (one less at 5M rows, at least 2)")
    parser.add_argument("--layout", choices=["interleaved", "back-to-back"], default="interleaved",
                        help="within a block: rounds of each tool's warm-up and timed run (interleaved), or each "
                             "tool's runs one after the other")
    parser.add_argument("--tfdv", choices=["auto", "skip"], default="auto",
                        help="skip: do not run the TFDV peer; keep its previous figures, labelled as such")
    options = parser.parse_args(argv)
    from kfpc.components.statistics import core

    sizes = [100_000] if options.quick else [100_000, 1_000_000, 5_000_000]
    rss_sizes = [100_000] if options.quick else [1_000_000, 10_000_000]
    work = Path(tempfile.mkdtemp(prefix="kfpc-bench-"))
    previous_tfdv = _previous_tfdv(RESULTS / "validation.json")
    if options.tfdv == "skip":
        python, reason = None, "TFDV peer not run (--tfdv skip)"
    else:
        from parity_tfdv import tfdv_python

        python, reason = tfdv_python()
    peer = TfdvPeer(python) if python is not None else None
    repeat, blocks = max(1, options.repeat), max(2, options.blocks)
    rows_out = []
    core.generate_statistics(synthetic.make_table(1000))  # warm-up: lazy imports inside pyarrow/numpy
    for rows in sizes:
        path = synthetic.write_parquet(work / f"data_{rows}.parquet", rows, seed=0)
        entry = measure(path, rows, blocks if rows <= 1_000_000 else max(2, blocks - 1), repeat, peer,
                        options.layout)
        if "tfdv_seconds" not in entry and rows in previous_tfdv:
            entry["tfdv_previous"] = previous_tfdv[rows]
        rows_out.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k not in ("runs", "block_medians")}), flush=True)
    if peer is not None:
        peer.close()
    by_rows = {entry["rows"]: entry for entry in rows_out}
    linearity = {}
    if 1_000_000 in by_rows and 5_000_000 in by_rows:
        # time at 5M rows / time at 1M rows / 5: 1.0 is linear in rows
        for name in ("kfpc", "kfpc_single_thread", "bare_read"):
            key = {"kfpc": "kfpc_seconds", "kfpc_single_thread": "kfpc_single_thread_seconds",
                   "bare_read": "bare_read_seconds"}[name]
            linearity[name] = by_rows[5_000_000][key] / by_rows[1_000_000][key] / 5
            linearity[name + "_cpu"] = (by_rows[5_000_000]["cpu_seconds"][name]
                                        / by_rows[1_000_000]["cpu_seconds"][name] / 5)
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
    result = {"quick": options.quick, "repeat": repeat, "blocks": blocks, "layout": options.layout,
              "cpus": os.cpu_count(),
              "tfdv": reason or "TFDV 1.16.1 generate_statistics_from_dataframe",
              "goal": f"kfpc <= {GOAL_RATIO}x the bare read in every block at 1M and 5M rows",
              "goal_met": all(by_rows[r]["goal_met_every_block"] for r in (1_000_000, 5_000_000) if r in by_rows),
              "growth_5m_over_1m_per_row": linearity, "timings": rows_out, "memory": rss}
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

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    timings = result["timings"]
    rows = [t["rows"] for t in timings]
    left.plot(rows, [t["kfpc_seconds"] for t in timings], "o-", label="kfpc statistics (from Parquet)")
    left.plot(rows, [t["kfpc_single_thread_seconds"] for t in timings], "o:", label="kfpc, threads=1")
    left.plot(rows, [t["bare_read_seconds"] for t in timings], "s--", label="bare pyarrow read")
    if all("tfdv_seconds" in t for t in timings):
        left.plot(rows, [t["tfdv_seconds"] for t in timings], "^-", label="TFDV 1.16.1 (DataFrame)")
    # (TFDV figures kept from an earlier run are not drawn: that run saw another load, the lines would mislead)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("rows (12 columns)")
    left.set_ylabel("seconds (median)")
    left.legend(fontsize=8)
    left.set_title("statistics time")
    for t in timings:
        label = f"{t['rows']:,}".replace(",000,000", "M").replace(",000", "k")
        middle.plot([label] * len(t["ratio_to_read_by_block"]), t["ratio_to_read_by_block"], "o", alpha=0.6)
        middle.plot([label], [t["ratio_to_read"]], "k_", markersize=20)
    middle.axhline(GOAL_RATIO, color="red", linestyle="--", label=f"goal {GOAL_RATIO}x")
    middle.set_ylabel("kfpc / bare read (wall), per block")
    middle.set_title("ratio to the read (dots: blocks, bar: median)")
    middle.legend()
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
