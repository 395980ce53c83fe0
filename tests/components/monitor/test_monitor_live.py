"""End to end on loopback: a real Prometheus (Debian's package) scrapes a running kfpc model server every second
and evaluates the generated rules; drifted traffic and a burst of bad requests make the matching alert
expressions true through the query API, clean traffic leaves every one false."""

from __future__ import annotations

import json
import math
import random
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pyarrow.parquet as pq
import pytest
import yaml

from kfpc.components.monitor import core, reference, rules


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _query(url: str, promql: str) -> list:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=10) as r:
        answer = json.loads(r.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _post(url: str, body: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def _rows(data_dir, features) -> list[dict]:
    table = pq.read_table(data_dir / "Split-train" / "data.parquet", columns=[f["name"] for f in features])
    rows = table.to_pylist()
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows


def _traffic(predict_url: str, rows: list[dict], seconds: float, change=None, bad_every: int = 0) -> dict:
    rng, codes, sent = random.Random(7), {}, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = [dict(rng.choice(rows)) for _ in range(10)]
        if change:
            for row in batch:
                change(row)
        code = _post(predict_url, {"instances": batch})
        codes[code] = codes.get(code, 0) + 1
        sent += 1
        if bad_every and sent % bad_every == 0:
            code = _post(predict_url, {"instances": [{**batch[0], "colour": "red"}]})  # unknown feature: 400
            codes[code] = codes.get(code, 0) + 1
    return codes


@pytest.fixture(scope="module")
def live(tmp_path_factory, penguins, served_model):
    from kfpc.components.artifacts import read_statistics as load_statistics
    from kfpc.components.contract import read_card as load_model_card
    from kfpc.serving.local import LocalServer

    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: `apt-get install prometheus` (.ci/run does it)"
    root = tmp_path_factory.mktemp("live")
    card = load_model_card(served_model)
    scores, _ = reference.eval_outputs(served_model, penguins["data"])
    thresholds = rules.AlertThresholds(window="15s", for_duration="0s", min_requests=20, min_samples=100,
                                       throughput_offset="1h")
    core.write_monitoring_config(root / "config", card, load_statistics(penguins["stats"], "train"),
                                 model_name="penguins", namespace="", scores=scores, thresholds=thresholds,
                                 target_selector='job="kfpc"')
    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    with LocalServer(served_model, model_name="penguins", env=env, payload_log=str(root / "payload.jsonl")) as server:
        port = _free_port()
        (root / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(root / "config" / core.RULES_FILE)],
            "scrape_configs": [{"job_name": "kfpc", "static_configs": [{"targets": [server.url.split("//")[1]]}]}]}))
        process = subprocess.Popen([binary, f"--config.file={root / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not _ready(url):
                assert time.monotonic() < deadline, "Prometheus did not become ready in 30 s"
                time.sleep(0.2)
            yield {"server": server, "prometheus": url, "root": root, "card": card,
                   "rows": _rows(penguins["data"], card["features"])}
        finally:
            process.terminate()
            process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def _alerts(root) -> dict[str, list[str]]:
    groups = yaml.safe_load((root / "config" / core.RULES_FILE).read_text())["groups"]
    out: dict[str, list[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                out.setdefault(rule["alert"], []).append(rule["expr"])
    return out


def _true(url: str, expressions: list[str]) -> list[dict]:
    return [item for expr in expressions for item in _query(url, expr)]


def test_clean_traffic_leaves_every_alert_false_then_drift_and_bad_requests_make_theirs_true(live):
    url, root = live["prometheus"], live["root"]
    predict = f"{live['server'].url}/v1/models/penguins:predict"
    alerts = _alerts(root)
    codes = _traffic(predict, live["rows"], 8)
    assert set(codes) == {200}
    deadline = time.monotonic() + 20
    while not _query(url, 'kfpc:requests:increase{model_name="penguins"} >= 20'):
        assert time.monotonic() < deadline, "Prometheus recorded no requests"
        time.sleep(0.5)
    scraped = _query(url, 'kfpc:prediction_score_count:increase{model_name="penguins"}')
    assert float(scraped[0]["value"][1]) >= 100, "enough predictions for the distribution alerts to be judged"
    for alert, expressions in alerts.items():
        assert _true(url, expressions) == [], f"{alert} is true on clean traffic"

    # one feature drifts (every penguin comes from Torgersen) and every other request is malformed
    codes = _traffic(predict, live["rows"], 8, change=lambda row: row.update(island="Torgersen"), bad_every=1)
    assert codes.get(400, 0) >= 20 and codes.get(200, 0) >= 20
    deadline = time.monotonic() + 20
    while True:
        drift = _true(url, alerts["KfpcFeatureCategoryDrift"])
        rejected = _true(url, alerts["KfpcClientErrors"])
        if drift and rejected:
            break
        assert time.monotonic() < deadline, f"alerts not true in time: drift {drift}, client errors {rejected}"
        time.sleep(0.5)
    assert {item["metric"]["feature"] for item in drift} == {"island"}, "only the drifted feature"
    assert _true(url, alerts["KfpcServerErrors"]) == [], "400s are the clients' errors, not the server's"
    psi = _query(url, 'kfpc:feature_category_psi{model_name="penguins"}')
    by_feature = {item["metric"]["feature"]: float(item["value"][1]) for item in psi}
    assert by_feature["island"] > 0.2 > by_feature["sex"]


def test_every_dashboard_query_is_valid_promql_on_the_live_prometheus(live):
    board = json.loads((live["root"] / "config" / core.DASHBOARD_FILE).read_text())
    for expr in rules.dashboard_queries(board):
        _query(live["prometheus"], expr)  # status success, or the assertion names the answer
    assert any("kfpc:prediction_score_psi" in e for e in rules.dashboard_queries(board))


def test_the_score_buckets_are_the_ones_the_server_exports(live):
    from kfpc.serving.observability import SCORE_BUCKETS

    assert rules.SCORE_BUCKETS == SCORE_BUCKETS
    with urllib.request.urlopen(f"{live['server'].url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for bound in rules.SCORE_BUCKETS:
        assert f'kfpc_prediction_score_bucket{{le="{rules.le_label(bound)}",model_name="penguins"}}' in text
