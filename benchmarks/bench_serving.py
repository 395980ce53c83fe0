"""Benchmark of the kfpc model server: latency and throughput over real HTTP on 127.0.0.1.

Measures p50/p99 latency and throughput at concurrency 1, 16 and 64 for 1-row and 32-row v1 requests,
with dynamic batching on and off (off twice: model calls on the model thread, the default, and on the
event loop, KFPC_MODEL_CALL=loop), against the floor: the bare in-process model call
(``Predictor.predict``) on the same rows. Goals (issue 7): p50 overhead under 2 ms at concurrency 1;
at concurrency 64, at least 5x the throughput of batching off.

    .venv/bin/python benchmarks/bench_serving.py [--quick] [--model-dir DIR]

The full run adds a heavier model (a 6.3M-parameter MLP, milliseconds per call) where batching has
more to save. Writes ``benchmarks/results/serving.json`` and ``benchmarks/results/serving.png``. The
load generator is a bounded loop of asyncio keep-alive connections in this process (each server runs
in its own); every point is the median of 3 runs (1 with --quick), the three servers alternating. The
throughput goal is checked against the faster of the two batching-off servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROW = {"island": "Biscoe", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
       "body_mass_g": 3750.0, "sex": "male", "year": 2007.0}
CONCURRENCY = (1, 16, 64)
ROWS = (1, 32)
MODES = ("batching_on", "batching_off", "batching_off_loop")


def make_model(workdir: Path) -> Path:
    """Train the penguins model with the real trainer (1 epoch: speed does not depend on accuracy)."""
    from kfpc.components.ingest.core import ingest
    from kfpc.components.train.core import train

    ingest(str(ROOT / "pipelines" / "data" / "penguins.csv"), workdir / "data")
    train(workdir / "data", workdir / "model", label="species", epochs=1, seed=1, verbose=0)
    return workdir / "model"


def rows_for(count: int) -> list[dict]:
    return [dict(ROW, body_mass_g=3000.0 + 10 * i, island=("Biscoe", "Dream", "Torgersen")[i % 3])
            for i in range(count)]


def percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": round(at(0.50), 3), "p99_ms": round(at(0.99), 3)}


def bench_floor(model_dir: Path, seconds: float) -> dict:
    """The bare in-process model call, one caller: what no server can beat."""
    from kfpc.components import contract

    loaded = contract.load_predictor(contract.locate(model_dir))
    result = {}
    for rows in ROWS:
        columns = {name: [row[name] for row in rows_for(rows)] for name in ROW}
        for _ in range(20):
            loaded.predict(columns)
        latencies, deadline = [], time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            loaded.predict(columns)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        result[str(rows)] = dict(percentiles(latencies), requests_per_s=round(len(latencies) / elapsed, 1),
                                 rows_per_s=round(rows * len(latencies) / elapsed, 1), requests=len(latencies))
    return result


async def _client(port: int, request: bytes, warm_until: float, deadline: float, latencies: list,
                  errors: list) -> None:
    # One keep-alive connection; requests before ``warm_until`` warm it up and are not recorded.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            start = head.lower().find(b"content-length:") + len(b"content-length:")
            await reader.readexactly(int(head[start:head.find(b"\r\n", start)]))
            if t0 < warm_until:
                continue
            if not head.startswith(b"HTTP/1.1 200 "):
                errors.append(head[:head.find(b"\r\n")].decode())
            else:
                latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def _load(port: int, request: bytes, concurrency: int, seconds: float,
                warmup: float = 0.5) -> tuple[list, list, float]:
    latencies: list[float] = []
    errors: list[str] = []
    warm_until = time.perf_counter() + warmup
    deadline = warm_until + seconds
    await asyncio.gather(*(_client(port, request, warm_until, deadline, latencies, errors)
                           for _ in range(concurrency)))
    # Requests started before the deadline finish after it: count the time they took.
    return latencies, errors, max(time.perf_counter(), deadline) - warm_until


def http_request(path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return head + payload


def bench_servers(model_dir: Path, seconds: float, repeats: int, concurrency_levels=CONCURRENCY,
                  row_counts=ROWS) -> dict:
    """Batching on and off, both servers up, measured alternately; the median of ``repeats`` runs per point.

    Alternating the two servers point by point keeps a change in the machine's load (other processes share
    its cores) from landing on one configuration only.
    """
    from kfpc.serving.local import LocalServer

    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result: dict = {mode: {} for mode in MODES}
    # batching off twice: model calls on the model thread (the default) and on the event loop
    # (KFPC_MODEL_CALL=loop), the faster way for a light model; the goal compares with the faster of the two.
    loop_env = dict(env, KFPC_MODEL_CALL="loop")
    with LocalServer(model_dir, model_name="penguins", batching=True, env=env, log_level="WARNING") as on, \
            LocalServer(model_dir, model_name="penguins", batching=False, env=env, log_level="WARNING") as off, \
            LocalServer(model_dir, model_name="penguins", batching=False, env=loop_env, log_level="WARNING") as loop:
        servers = {"batching_on": on, "batching_off": off, "batching_off_loop": loop}
        for rows in row_counts:
            request = http_request("/v1/models/penguins:predict", {"instances": rows_for(rows)})
            for concurrency in concurrency_levels:
                runs: dict = {mode: [] for mode in servers}
                for _ in range(repeats):
                    for mode, server in servers.items():
                        latencies, errors, elapsed = asyncio.run(_load(server.port, request, concurrency, seconds))
                        runs[mode].append(dict(percentiles(latencies), requests_per_s=len(latencies) / elapsed,
                                               requests=len(latencies), errors=len(errors)))
                for mode in servers:
                    entry = _median(runs[mode], rows)
                    result[mode][f"{rows}x{concurrency}"] = entry
                    print(f"  {mode:<17} rows={rows:>2} concurrency={concurrency:>2}: p50 {entry['p50_ms']} ms, "
                          f"p99 {entry['p99_ms']} ms, {entry['requests_per_s']} req/s, {entry['errors']} errors",
                          flush=True)
        v2 = {"inputs": [{"name": name, "shape": [1], "datatype": "BYTES" if isinstance(value, str) else "FP64",
                          "data": [value]} for name, value in ROW.items()]}
        runs = []
        for _ in range(repeats):
            latencies, errors, elapsed = asyncio.run(_load(on.port, http_request("/v2/models/penguins/infer", v2),
                                                           1, seconds))
            runs.append(dict(percentiles(latencies), requests_per_s=len(latencies) / elapsed,
                             requests=len(latencies), errors=len(errors)))
        result["batching_on"]["v2_1x1"] = _median(runs, 1)
    return result


def _median(runs: list[dict], rows: int) -> dict:
    throughput = statistics.median(run["requests_per_s"] for run in runs)
    return {
        "p50_ms": round(statistics.median(run["p50_ms"] for run in runs if run["p50_ms"] is not None), 3),
        "p99_ms": round(statistics.median(run["p99_ms"] for run in runs if run["p99_ms"] is not None), 3),
        "requests_per_s": round(throughput, 1),
        "rows_per_s": round(throughput * rows, 1),
        "requests": sum(run["requests"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "runs": len(runs),
    }


def _ratio(results: dict, point: str) -> dict:
    """Batching-on throughput over batching off (model thread), off on the event loop, and the faster off."""
    on = results["batching_on"][point]["requests_per_s"]
    off = results["batching_off"][point]["requests_per_s"]
    off_loop = results["batching_off_loop"][point]["requests_per_s"]
    return {"vs_off": round(on / off, 2), "vs_off_loop": round(on / off_loop, 2),
            "vs_faster_off": round(on / max(off, off_loop), 2)}


def make_heavy_model(workdir: Path) -> Path:
    """A 6.3M-parameter MLP over the same features (tests/serving/toy_model.py): a model call of milliseconds."""
    sys.path.insert(0, str(ROOT / "tests" / "serving"))
    import toy_model

    return toy_model.build(workdir / "heavy", hidden=1024, depth=6)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(results, rows, f"penguins model, {rows}-row requests") for rows in ROWS]
    if "heavy" in results:
        panels.append((results["heavy"], 1, "6.3M-parameter MLP, 1-row requests"))
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2))
    for (data, rows, title), axis in zip(panels, axes, strict=True):
        for mode, style, label in (("batching_on", "o-", "batching on"), ("batching_off", "s--", "batching off"),
                                   ("batching_off_loop", "^:", "batching off, model on the event loop")):
            values = [data[mode][f"{rows}x{c}"]["rows_per_s"] for c in CONCURRENCY]
            axis.plot(CONCURRENCY, values, style, label=f"server, {label}")
        axis.axhline(data["floor"][str(rows)]["rows_per_s"], color="grey", linestyle=":",
                     label="bare model call (1 caller)")
        axis.set_xscale("log", base=2)
        axis.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel("rows / s")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("kfpc model server throughput on 127.0.0.1 (v1 JSON)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per point, one run, no heavy model")
    parser.add_argument("--model-dir", help="a Model artifact to serve (default: train the penguins model)")
    parser.add_argument("--out", default=str(RESULTS / "serving.json"))
    args = parser.parse_args(argv)
    seconds, repeats = (1.0, 1) if args.quick else (3.0, 3)
    with tempfile.TemporaryDirectory(prefix="kfpc-bench-serving-") as workdir:
        model_dir = Path(args.model_dir) if args.model_dir else make_model(Path(workdir))
        print(f"floor: in-process Predictor.predict of {model_dir}", flush=True)
        results = {"floor": bench_floor(model_dir, seconds)}
        print(f"  {results['floor']}", flush=True)
        results.update(bench_servers(model_dir, seconds, repeats))
        if not args.quick:
            heavy = make_heavy_model(Path(workdir))
            print("heavy model (6.3M-parameter MLP), 1-row requests", flush=True)
            results["heavy"] = {"floor": bench_floor(heavy, seconds)}
            results["heavy"].update(bench_servers(heavy, seconds, repeats, row_counts=(1,)))
    floor_p50 = results["floor"]["1"]["p50_ms"]
    ratio = {str(rows): _ratio(results, f"{rows}x64") for rows in ROWS}
    results["summary"] = {
        "p50_overhead_ms_concurrency_1": round(results["batching_on"]["1x1"]["p50_ms"] - floor_p50, 3),
        "p50_overhead_ms_concurrency_1_batching_off": round(results["batching_off"]["1x1"]["p50_ms"] - floor_p50, 3),
        "p50_overhead_ms_concurrency_1_v2": round(results["batching_on"]["v2_1x1"]["p50_ms"] - floor_p50, 3),
        "goal_p50_overhead_ms": 2.0,
        "throughput_ratio_batching_on_vs_off_concurrency_64": {rows: r["vs_faster_off"] for rows, r in ratio.items()},
        "throughput_ratio_details": ratio,
        "goal_throughput_ratio": 5.0,
        "seconds_per_point": seconds,
        "runs_per_point": repeats,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "note": "client and server share the machine's cores with other processes; one asyncio client process",
    }
    if "heavy" in results:
        heavy = results["heavy"]
        results["summary"]["heavy_throughput_ratio_concurrency_64"] = _ratio(heavy, "1x64")["vs_faster_off"]
        results["summary"]["heavy_throughput_ratio_details"] = _ratio(heavy, "1x64")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    print(json.dumps(results["summary"], indent=2))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
