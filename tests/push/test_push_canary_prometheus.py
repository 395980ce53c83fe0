"""The canary bake read from a real Prometheus (Debian's package; `.ci/run` installs it) scraping a real
/metrics endpoint on loopback every second: the exact PromQL the push step sends, answered by Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_exposition import exposition

from kfpc.components.push import canary as c


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def prometheus(tmp_path, metrics_server):
    """``prometheus(texts) -> url``: a real Prometheus scraping a /metrics server that serves ``texts`` in turn."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: `apt-get install prometheus` (.ci/run does it)"
    processes = []

    def start(texts: list[str]) -> str:
        target = metrics_server(texts)
        port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: canary\n    static_configs:\n"
            f"      - targets: ['{target.url.split('//')[1].split('/')[0]}']\n"
        )
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return url
            except OSError:
                time.sleep(0.2)
        raise AssertionError("Prometheus did not become ready in 30 s")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def _scraped(url: str, samples: int, timeout_s: float = 60) -> None:
    """Wait until Prometheus holds ``samples`` scrapes of the canary's request counter."""
    query = "count_over_time(kfpc_requests_total{model_name=\"penguins\",code=\"200\"}[5m])"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}") as answer:
            result = json.loads(answer.read())["data"]["result"]
        if result and float(result[0]["value"][1]) >= samples:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape {samples} samples in {timeout_s} s")


def _growing(ok_per_scrape: int, errors_per_scrape: int, scrapes: int = 120) -> list[str]:
    return [exposition("penguins", ok=ok_per_scrape * i, errors=errors_per_scrape * i, latency_s=0.004)
            for i in range(scrapes)]


def test_a_canary_answering_5xx_fails_its_bake_on_prometheus_numbers(prometheus):
    url = prometheus(_growing(90, 10))
    _scraped(url, 6)
    source = c.PrometheusSource(url, 'model_name="penguins"')
    sample = source.sample(30)
    # only penguins' series (another model's 500s are in the same exposition); increase() extrapolates to the
    # window's edges, so the counts are not integers, but their ratio holds
    assert sample.requests > 0 and sample.error_rate == pytest.approx(0.1, abs=1e-3)
    assert 3 < sample.p99_ms <= 5  # histogram_quantile over the (3 ms, 5 ms] bucket
    with pytest.raises(c.CanaryFailed, match="canary error rate 0.1000 > max_error_rate 0.01"):
        c.bake(source, c.Thresholds(bake_s=5, max_error_rate=0.01, max_p99_latency_ms=1000, min_requests=10),
               extra_wait_s=20, poll_s=1)


def test_a_healthy_canary_passes_its_bake_and_a_slow_one_fails_on_p99(prometheus):
    url = prometheus(_growing(100, 0))
    _scraped(url, 6)
    source = c.PrometheusSource(url, 'model_name="penguins"')
    sample = c.bake(source, c.Thresholds(bake_s=3, max_error_rate=0.01, max_p99_latency_ms=1000, min_requests=10),
                    extra_wait_s=20, poll_s=1)
    assert sample.requests >= 10 and sample.errors == 0
    with pytest.raises(c.CanaryFailed, match="canary p99 latency .* ms > max_p99_latency_ms 2"):
        c.bake(source, c.Thresholds(bake_s=3, max_error_rate=0.01, max_p99_latency_ms=2, min_requests=10),
               extra_wait_s=20, poll_s=1)
