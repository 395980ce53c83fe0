"""Prometheus text expositions of the kfpc server's request metrics, for the canary tests.

A module of its own (not conftest.py): ``from conftest import ...`` inside a test resolves to whichever
conftest the whole suite imported last.
"""

from __future__ import annotations


def exposition(model_name: str, ok: int = 0, errors: int = 0, latency_s: float = 0.01, client_errors: int = 0) -> str:
    """A real Prometheus text exposition of the kfpc server's request metrics, made by prometheus_client.

    ``ok`` 200s, ``errors`` 500s and ``client_errors`` 400s, every one observed at ``latency_s``.
    """
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from kfpc.serving.observability import LATENCY_BUCKETS

    registry = CollectorRegistry()
    requests = Counter("kfpc_requests", "Requests", ["model_name", "protocol", "code"], registry=registry)
    latency = Histogram("kfpc_request_latency_seconds", "Latency", ["model_name", "protocol"],
                        buckets=LATENCY_BUCKETS, registry=registry)
    for code, count in (("200", ok), ("500", errors), ("400", client_errors)):
        if count:
            requests.labels(model_name, "v2", code).inc(count)
            for _ in range(count):
                latency.labels(model_name, "v2").observe(latency_s)
    requests.labels("another-model", "v2", "500").inc(1000)  # other models' series must not count
    return generate_latest(registry).decode()
