"""Fuzzing and soak of the kfpc model server: ``benchmarks/results/fuzz.json`` and ``soak.json``.

Fuzz: seeded malformed (and some valid) bodies (tests/serving/fuzz_bodies.py; plain ``random``, hypothesis
is not in the project's environment) for the v1, v2 JSON, v2 binary and gRPC decoders, 100,000 per protocol
by default, against one live server (batching on, gRPC on): counts per status, and zero 5xx / INTERNAL,
zero dropped connections, the server alive at the end, are the pass conditions.

Soak: 1,000,000 requests at concurrency 64 on loopback, 80% good (v1 and v2 JSON, 1 and 32 rows) and 20%
bad (fuzzed bodies), on keep-alive connections; the server's RSS is sampled every second and its growth
after warm-up (the first 10% of requests) reported: it must stay below 5%.

Usage: python benchmarks/bench_fuzz.py [--quick] [--bodies N] [--soak-requests N] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "serving"))

PROTOCOLS = ["v1", "v2_json", "v2_binary", "grpc"]


def _fuzz_shard(job: tuple) -> dict:
    """One client process: ``count`` bodies of one protocol with its own seed."""
    from fuzz_bodies import BodyFuzzer, run_grpc, run_http
    from toy_model import PENGUIN_FEATURES

    protocol, seed, count, port, grpc_target = job
    fuzzer = BodyFuzzer(PENGUIN_FEATURES, seed=seed, model_name="penguins")
    if protocol == "grpc":
        return run_grpc(grpc_target, fuzzer, count)
    return run_http("127.0.0.1", port, "penguins", fuzzer, protocol, count)


def _merge(results: list[dict]) -> dict:
    codes: dict = {}
    merged: dict = {"examples": [], "connection_errors": 0, "max_error_size": 0}
    for result in results:
        for code, n in result["codes"].items():
            codes[str(code)] = codes.get(str(code), 0) + n
        merged["examples"] += result.get("examples_5xx", []) + result.get("examples_internal", [])
        merged["connection_errors"] += result.get("connection_errors", 0)
        merged["max_error_size"] = max(merged["max_error_size"], result.get("max_error_bytes", 0),
                                       result.get("max_error_chars", 0))
    merged["codes"] = dict(sorted(codes.items()))
    merged["examples"] = merged["examples"][:5]
    return merged


def fuzz(server, bodies: int, workers: int) -> dict:
    """Every protocol in turn, ``bodies`` each, split over ``workers`` client processes."""
    port = int(server.url.rsplit(":", 1)[1])
    context = multiprocessing.get_context("spawn")
    report = {}
    with context.Pool(workers) as pool:
        for p, protocol in enumerate(PROTOCOLS):
            shares = [bodies // workers + (1 if i < bodies % workers else 0) for i in range(workers)]
            jobs = [(protocol, 1000 * p + i, n, port, server.grpc_url) for i, n in enumerate(shares)]
            started = time.perf_counter()
            merged = _merge(pool.map(_fuzz_shard, jobs))
            seconds = time.perf_counter() - started
            server_errors = sum(n for code, n in merged["codes"].items() if code[:1] == "5" or code in (
                "INTERNAL", "UNKNOWN"))
            report[protocol] = dict(bodies=sum(shares), seconds=round(seconds, 1),
                                    bodies_per_second=round(sum(shares) / seconds), server_errors=server_errors,
                                    **merged)
            print(f"fuzz {protocol}: {sum(shares)} bodies in {seconds:.0f} s, codes {merged['codes']}, "
                  f"5xx/INTERNAL {server_errors}, dropped connections {merged['connection_errors']}", flush=True)
    return report


# ---------------------------------------------------------------------- soak


def _http_request(path: str, body: bytes, headers: dict | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {"Content-Type": "application/json"}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def soak_requests(seed: int = 7, bad_pool: int = 4000) -> tuple[list[bytes], list[bytes]]:
    """Ready-made HTTP requests: (good, bad)."""
    from fuzz_bodies import BodyFuzzer
    from toy_model import PENGUIN_FEATURES, ROW

    v1, v2 = "/v1/models/penguins:predict", "/v2/models/penguins/infer"
    rng = random.Random(seed)
    good = []
    for rows in (1, 32):
        instances = [dict(ROW, body_mass_g=3000.0 + 10 * i + rng.random()) for i in range(rows)]
        good.append(_http_request(v1, json.dumps({"instances": instances}).encode()))
        inputs = [{"name": name, "shape": [rows], "datatype": "BYTES" if isinstance(value, str) else "FP64",
                   "data": [row[name] for row in instances]} for name, value in ROW.items()]
        good.append(_http_request(v2, json.dumps({"inputs": inputs}).encode()))
    fuzzer = BodyFuzzer(PENGUIN_FEATURES, seed=seed, model_name="penguins")
    bad = []
    for i in range(bad_pool):
        kind = i % 3
        if kind == 0:
            bad.append(_http_request(v1, fuzzer.v1()))
        elif kind == 1:
            bad.append(_http_request(v2, fuzzer.v2_json()))
        else:
            body, headers = fuzzer.v2_binary()
            bad.append(_http_request(v2, body, headers))
    return good, bad


async def _soak_client(port: int, requests: int, concurrency: int, good: list[bytes], bad: list[bytes],
                       bad_share: float, progress: list[int]) -> dict:
    codes: dict[int, int] = {}
    errors = [0]
    remaining = [requests]

    async def connection(worker: int) -> None:
        rng = random.Random(worker)
        reader = writer = None
        while remaining[0] > 0:
            remaining[0] -= 1
            request = rng.choice(bad) if rng.random() < bad_share else rng.choice(good)
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    key = key.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"connection" and value.strip().lower() == b"close":
                        close = True
                await reader.readexactly(length)
                codes[status] = codes.get(status, 0) + 1
                if close:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                errors[0] += 1
                if writer is not None:
                    writer.close()
                writer = None
            progress[0] += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    return {"codes": {str(k): v for k, v in sorted(codes.items())}, "connection_errors": errors[0]}


def soak(server, requests: int, concurrency: int, bad_share: float = 0.2) -> dict:
    """``requests`` requests at ``concurrency``; RSS of the server sampled every second."""
    import psutil

    good, bad = soak_requests()
    process = psutil.Process(server.process.pid)
    port = int(server.url.rsplit(":", 1)[1])
    progress = [0]
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), progress[0], process.memory_info().rss))
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_soak_client(port, requests, concurrency, good, bad, bad_share, progress))
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    samples.append((time.perf_counter(), progress[0], process.memory_info().rss))
    warm = next((rss for _, n, rss in samples if n >= requests * 0.1), samples[0][2])
    end = samples[-1][2]
    peak_after = max(rss for _, n, rss in samples if n >= requests * 0.1)
    server_errors = sum(n for code, n in result["codes"].items() if code.startswith("5"))
    report = dict(requests=requests, concurrency=concurrency, bad_share=bad_share, seconds=round(seconds, 1),
                  requests_per_second=round(requests / seconds), server_errors=server_errors, **result,
                  rss_mb=dict(start=round(samples[0][2] / 2**20, 1), after_warmup=round(warm / 2**20, 1),
                              end=round(end / 2**20, 1), max_after_warmup=round(peak_after / 2**20, 1)),
                  rss_growth_after_warmup_pct=round(100 * (end - warm) / warm, 2),
                  rss_max_growth_after_warmup_pct=round(100 * (peak_after - warm) / warm, 2),
                  rss_samples=[[round(t - started, 1), n, round(rss / 2**20, 1)] for t, n, rss in samples[::5]])
    print(f"soak: {requests} requests in {seconds:.0f} s ({report['requests_per_second']} req/s), codes "
          f"{result['codes']}, 5xx {server_errors}, dropped {result['connection_errors']}, RSS "
          f"{report['rss_mb']['after_warmup']} -> {report['rss_mb']['end']} MB "
          f"({report['rss_growth_after_warmup_pct']}%)", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 bodies per protocol, 20,000 soak requests")
    parser.add_argument("--bodies", type=int, default=100_000, help="fuzzed bodies per protocol")
    parser.add_argument("--soak-requests", type=int, default=1_000_000, help="soak requests")
    parser.add_argument("--concurrency", type=int, default=64, help="soak connections")
    parser.add_argument("--workers", type=int, default=3, help="fuzzing client processes")
    parser.add_argument("--skip-fuzz", action="store_true")
    parser.add_argument("--skip-soak", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.bodies, args.soak_requests = 2_000, 20_000
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import toy_model

    from kfpc.serving.local import LocalServer

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    machine = dict(platform=platform.platform(), cpus=os.cpu_count(), python=platform.python_version())
    failed = False
    with tempfile.TemporaryDirectory(prefix="kfpc-fuzz-") as tmp:
        model = toy_model.build(Path(tmp) / "penguins")
        with LocalServer(model, model_name="penguins", grpc_port=0, env=env, log_level="ERROR") as server:
            if not args.skip_fuzz:
                report = dict(machine=machine, generator="seeded random (tests/serving/fuzz_bodies.py)",
                              protocols=fuzz(server, args.bodies, args.workers))
                report["server_alive"] = server.process.poll() is None
                report["passed"] = report["server_alive"] and all(
                    r["server_errors"] == 0 and r["connection_errors"] == 0 for r in report["protocols"].values())
                failed |= not report["passed"]
                (results / "fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
            if not args.skip_soak:
                report = dict(machine=machine, **soak(server, args.soak_requests, args.concurrency))
                report["server_alive"] = server.process.poll() is None
                report["passed"] = (report["server_alive"] and report["server_errors"] == 0
                                    and report["rss_growth_after_warmup_pct"] < 5)
                failed |= not report["passed"]
                (results / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {results}: {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
