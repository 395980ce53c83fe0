"""The canary bake read from a real Prometheus (Debian's package; `.ci/run` installs it) scraping a real
/metrics endpoint on loopback every second: the exact PromQL the push step sends, answered by Prometheus."""

from __future__ import annotations

import dataclasses
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
    """``prometheus(texts, **jobs) -> url``: a real Prometheus scraping a /metrics server that serves ``texts`` in
    turn (job ``canary``), and one more per keyword (job ``<keyword>``, serving its texts)."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: `apt-get install prometheus` (.ci/run does it)"
    processes = []

    def start(texts: list[str], **others: list[str]) -> str:
        jobs = {"canary": texts, **others}
        port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n" + "".join(
                f"  - job_name: {job}\n    static_configs:\n"
                f"      - targets: ['{metrics_server(served).url.split('//')[1].split('/')[0]}']\n"
                for job, served in jobs.items())
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
    """Wait until Prometheus holds ``samples`` scrapes of the request counter of every job."""
    query = "count_over_time(kfpc_requests_total{model_name=\"penguins\",code=\"200\"}[5m])"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}") as answer:
            result = json.loads(answer.read())["data"]["result"]
        if result and all(float(series["value"][1]) >= samples for series in result):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape {samples} samples in {timeout_s} s")


def _growing(ok_per_scrape: int, errors_per_scrape: int, scrapes: int = 120, latency_s: float = 0.004) -> list[str]:
    return [exposition("penguins", ok=ok_per_scrape * i, errors=errors_per_scrape * i, latency_s=latency_s)
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


def test_a_canary_worse_than_the_stable_revision_fails_and_one_like_it_passes(prometheus):
    """Both within the absolute limits (error rate 0.01, p99 1 s): only the comparison with stable decides."""
    canary, stable = 'model_name="penguins",job="canary"', 'model_name="penguins",job="stable"'
    limits = c.Thresholds(bake_s=3, max_error_rate=0.05, max_p99_latency_ms=1000, min_requests=10,
                          max_error_rate_increase=0.005, max_p99_ratio=1.5)
    # canary: 2 % 5xx at ~20 ms; stable: no 5xx at ~4 ms
    url = prometheus(_growing(98, 2, latency_s=0.02), stable=_growing(100, 0), twin=_growing(100, 0))
    _scraped(url, 6)
    worse = c.PrometheusSource(url, canary, baseline_selector=stable)
    sample = worse.sample(30)
    assert sample.baseline.requests > 0 and sample.baseline.errors == 0
    assert sample.error_rate == pytest.approx(0.02, abs=1e-3)
    with pytest.raises(c.CanaryFailed, match=r"canary error rate 0.0200 > stable's 0.0000 \+ max_error_rate_increase"):
        c.bake(worse, limits, extra_wait_s=20, poll_s=1)
    # the same error rate as stable but slower: the p99 ratio fails it
    with pytest.raises(c.CanaryFailed, match=r"canary p99 latency .* ms > stable's .* ms x max_p99_ratio 1.5"):
        c.bake(worse, dataclasses.replace(limits, max_error_rate_increase=0.05), extra_wait_s=20, poll_s=1)
    # a canary serving like stable (another target, the same traffic): passes
    twin = 'model_name="penguins",job="twin"'
    passed = c.bake(c.PrometheusSource(url, twin, baseline_selector=stable), limits, extra_wait_s=20, poll_s=1)
    assert passed.requests >= 10 and passed.errors == 0 and passed.baseline.requests >= 10
    assert passed.p99_ms == pytest.approx(passed.baseline.p99_ms, rel=0.2)
    # sample-size aware: no comparison, and no promotion, while the stable side has too few requests
    with pytest.raises(c.CanaryFailed, match="stable revision answered only 0 requests"):
        c.bake(c.PrometheusSource(url, stable, baseline_selector='model_name="penguins",job="none"'),
               dataclasses.replace(limits, bake_s=1), extra_wait_s=1, poll_s=1)
