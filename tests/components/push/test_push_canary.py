"""The canary's verdict: histogram quantiles, the /metrics and Prometheus sources, and push_kserve's wiring."""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_exposition import exposition

from kfpc.components.push import canary as c
from kfpc.components.push import core, kube, manifest, rollout


def test_quantile_interpolates_like_histogram_quantile():
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert c.quantile_from_buckets(0.5, buckets) == pytest.approx(0.1)
    assert c.quantile_from_buckets(0.99, buckets) == pytest.approx(0.198)
    assert c.quantile_from_buckets(0.99, [(0.1, 10.0), (math.inf, 100.0)]) == math.inf  # slower than every bucket
    assert c.quantile_from_buckets(0.99, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_metrics_endpoint_counts_only_the_model_and_only_5xx_as_errors(metrics_server):
    server = metrics_server([exposition("penguins", ok=90, errors=10, client_errors=100, latency_s=0.004)])
    sample = c.MetricsEndpointSource(server.url, "penguins").sample(0)
    assert (sample.requests, sample.errors) == (200, 10)
    assert 4 < sample.p99_ms <= 5  # (3 ms, 5 ms] bucket


def test_an_unreachable_or_garbled_metrics_page_fails_the_canary(metrics_server):
    with pytest.raises(c.CanaryFailed, match="could not be read"):
        c.MetricsEndpointSource("http://user:secret@127.0.0.1:9/metrics", "m", timeout_s=1).sample(0)
    try:
        c.MetricsEndpointSource("http://user:secret@127.0.0.1:9/metrics", "m", timeout_s=1).sample(0)
    except c.CanaryFailed as err:
        assert "secret" not in str(err)
    server = metrics_server(["kfpc_requests_total{model_name=\"m\" 1\n"])
    with pytest.raises(c.CanaryFailed, match="not a Prometheus text exposition"):
        c.MetricsEndpointSource(server.url, "m").sample(0)


class FakePrometheus:
    """Prometheus' ``/api/v1/query`` on 127.0.0.1, answering the three queries of a canary bake.

    Answers use the API's real JSON shape (``{"status":"success","data":{"resultType":"vector",...}}``);
    every query received is kept in ``queries``.
    """

    def __init__(self, requests: float, errors: float, p99_s: float):
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)["query"][0]
                outer.queries.append(query)
                if query.startswith("histogram_quantile"):
                    value = p99_s
                elif 'code=~"5.."' in query:
                    value = errors
                else:
                    value = requests
                body = {"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {}, "value": [1765000000.0, str(value)]}]}}
                data = json.dumps(body).encode()
                self.send_response(200 if parts.path == "/api/v1/query" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def prometheus():
    servers = []

    def start(**kw):
        servers.append(FakePrometheus(**kw))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_prometheus_source_sends_increase_over_the_baked_window(prometheus):
    server = prometheus(requests=200, errors=4, p99_s=0.12)
    sample = c.PrometheusSource(server.url, 'namespace="ml",model_name="m"').sample(42.3)
    assert (sample.requests, sample.errors, sample.p99_ms) == (200, 4, pytest.approx(120))
    assert server.queries == [
        'sum(increase(kfpc_requests_total{namespace="ml",model_name="m"}[43s]))',
        'sum(increase(kfpc_requests_total{namespace="ml",model_name="m",code=~"5.."}[43s]))',
        'histogram_quantile(0.99, sum by (le) (increase(kfpc_request_latency_seconds_bucket'
        '{namespace="ml",model_name="m"}[43s])))',
    ]


def test_the_stable_series_are_selected_like_the_canarys_on_the_revision_rolled_out_before():
    opts = manifest.ServingOptions(name="m", namespace="ml", deployment_mode="Knative")
    ready = {"status": {"components": {"predictor": {"latestCreatedRevision": "m-predictor-00002",
                                                     "latestRolledoutRevision": "m-predictor-00001"}}}}
    source = core.canary_source(opts, "http://prom:9090")(ready)
    assert source.selector == 'namespace="ml",model_name="m",pod=~"m-predictor-00002-deployment-.*"'
    assert source.baseline_selector == 'namespace="ml",model_name="m",pod=~"m-predictor-00001-deployment-.*"'
    given = core.canary_source(opts, "http://prom:9090", 'pod=~"{revision}-.*"',
                               prometheus_stable_selector='pod=~"{stable_revision}-.*",model_name="{name}"')(ready)
    assert (given.selector, given.baseline_selector) == ('pod=~"m-predictor-00002-.*"',
                                                         'pod=~"m-predictor-00001-.*",model_name="m"')
    # a selector without {revision} (Standard mode) has no derived baseline: the absolute limits only
    assert core.canary_source(opts, "http://prom:9090", 'pod=~"x-.*"')(ready).baseline_selector == ""
    del ready["status"]["components"]["predictor"]["latestRolledoutRevision"]
    assert core.canary_source(opts, "http://prom:9090")(ready).baseline_selector == ""
    with pytest.raises(c.CanaryFailed, match="no status.components.predictor.latestRolledoutRevision"):
        core.canary_source(opts, "http://prom:9090", prometheus_stable_selector='pod=~"{stable_revision}"')(ready)


def _cluster_args(fake_kube, gcs, **kw):
    return dict(serving_root="gs://models/serving", name="penguins", namespace="ml", mode="cluster",
                kube_client=kube.IsvcClient.for_host(fake_kube.url), storage_client=gcs.client(),
                timeout_s=1, poll_s=0.02, **kw)


def test_knative_canary_judged_by_prometheus_on_its_revision_is_rolled_back(fake_model, fake_kube, gcs, prometheus):
    args = _cluster_args(fake_kube, gcs, deployment_mode="Knative")
    core.push_kserve(fake_model, **args)
    before = fake_kube.get("ml", "penguins")
    server = prometheus(requests=1000, errors=50, p99_s=0.05)
    with pytest.raises(rollout.RolloutError,
                       match=r"canary error rate 0.0500 > max_error_rate 0.01.*restored and verified live"):
        core.push_kserve(fake_model, **args, canary_traffic_percent=10, promote=True, bake_s=0.05,
                         prometheus_url=server.url)
    # the default selector picks the canary's Knative revision (generation 2 of the fake's controller)
    assert 'pod=~"penguins-predictor-00002-deployment-.*"' in server.queries[0]
    assert 'namespace="ml",model_name="penguins"' in server.queries[0]
    assert fake_kube.get("ml", "penguins")["spec"] == before["spec"]


def test_a_healthy_canary_judged_by_prometheus_is_promoted(fake_model, fake_kube, gcs, prometheus):
    args = _cluster_args(fake_kube, gcs, deployment_mode="Standard")
    core.push_kserve(fake_model, **args)
    server = prometheus(requests=1000, errors=1, p99_s=0.05)
    result = core.push_kserve(fake_model, **args, canary_traffic_percent=10, promote=True, bake_s=0.05,
                              prometheus_url=server.url, prometheus_selector='namespace="{namespace}",pod=~"x-.*"')
    assert result.action == "promoted" and result.traffic_percent == 100
    assert server.queries[0] == 'sum(increase(kfpc_requests_total{namespace="ml",pod=~"x-.*"}[1s]))'
    assert manifest.served_model_uri(fake_kube.get("ml", "penguins")) == result.model_uri


@pytest.mark.parametrize("kwargs,match", [
    ({}, "needs prometheus_url or canary_metrics_url"),
    ({"prometheus_url": "http://prom:9090"}, "prometheus_selector is required in Standard mode"),
    ({"canary_metrics_url": "http://c/metrics", "max_error_rate": 2.0}, "max_error_rate=2.0 is out of range"),
])
def test_promotion_without_a_way_to_judge_is_refused_before_anything_is_copied(fake_model, fake_kube, gcs, kwargs,
                                                                                match):
    args = _cluster_args(fake_kube, gcs)
    with pytest.raises(core.PushError, match=match):
        core.push_kserve(fake_model, **args, canary_traffic_percent=10, promote=True, **kwargs)
    assert gcs.names("models") == [] and fake_kube.requests == []


def test_dry_run_records_the_promotion_without_a_bake(fake_model, tmp_path):
    existing = manifest.render(manifest.ServingOptions(name="penguins", namespace="ml"), "gs://m/v1")
    existing["metadata"].update(resourceVersion="7", generation=3, uid="u")
    result = core.push_kserve(fake_model, serving_root=str(tmp_path / "s"), name="penguins", namespace="ml",
                              canary_traffic_percent=10, promote=True, existing_manifest=existing)
    assert result.action == "promoted"
    assert [q["method"] for q in result.requests].count("PATCH") == 2
