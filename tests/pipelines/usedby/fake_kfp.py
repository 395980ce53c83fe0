"""A small stand-in for the KFP v2beta1 REST API on 127.0.0.1, enough for kfp.Client's real code paths.

It answers healthz, experiments (list/create), runs (create/get, with task states that progress from
RUNNING to SUCCEEDED) and recurring runs (create/list/enable/disable/delete), and records every request
so a test can compare what the real client sent with what ``--dry-run`` printed.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeKfp:
    """The server's state: recorded requests and stored resources."""

    def __init__(self, run_states: tuple[str, ...] = ("RUNNING", "SUCCEEDED")):
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}  # id -> pipeline, with "versions": [{name, id, package}]
        self.run_states = run_states
        self._polls: dict[str, int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, method: str, path: str) -> list:
        """Bodies of the recorded requests with this method and path."""
        return [r["body"] for r in self.requests if r["method"] == method and r["path"] == path]

    def _run_view(self, run_id: str) -> dict:
        run = dict(self.runs[run_id])
        poll = self._polls.get(run_id, 0)
        self._polls[run_id] = poll + 1
        state = self.run_states[min(poll, len(self.run_states) - 1)]
        task_state = "RUNNING" if state == "RUNNING" else state
        run["state"] = state
        run["run_details"] = {"task_details": [
            {"task_id": "t-ingest", "display_name": "ingest", "state": "SUCCEEDED"},
            {"task_id": "t-train", "display_name": "train", "state": task_state},
        ]}
        return run

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, payload: dict | None = None):
                data = json.dumps(payload or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dispatch(self, method: str):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                    body = _multipart(self.headers["Content-Type"], raw)
                else:
                    body = json.loads(raw) if raw else None
                fake.requests.append({"method": method, "path": url.path, "query": parse_qs(url.query),
                                      "headers": dict(self.headers), "body": body})
                path = url.path.removeprefix("/apis/v2beta1")
                if path == "/healthz":
                    return self._reply(200, {"multi_user": False})
                if path == "/experiments" and method == "GET":
                    flt = json.loads(parse_qs(url.query).get("filter", ["{}"])[0])
                    names = [p.get("string_value") or p.get("stringValue") for p in flt.get("predicates", [])]
                    found = [e for e in fake.experiments.values() if e["display_name"] in names]
                    return self._reply(200, {"experiments": found, "total_size": len(found)})
                if path == "/experiments" and method == "POST":
                    experiment = dict(body, experiment_id=str(uuid.uuid4()))
                    fake.experiments[experiment["experiment_id"]] = experiment
                    return self._reply(200, experiment)
                if path == "/pipelines" and method == "GET":
                    flt = json.loads(parse_qs(url.query).get("filter", ["{}"])[0])
                    names = [p.get("string_value") or p.get("stringValue") for p in flt.get("predicates", [])]
                    found = [{k: v for k, v in p.items() if k != "versions"} for p in fake.pipelines.values()
                             if p["display_name"] in names]
                    return self._reply(200, {"pipelines": found, "total_size": len(found)})
                if path in ("/pipelines/upload", "/pipelines/upload_version") and method == "POST":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    package = body.get("uploadfile") if isinstance(body, dict) else None
                    if not package:
                        return self._reply(400, {"error": "no uploadfile part"})
                    if path == "/pipelines/upload":
                        if any(p["display_name"] == query["name"] for p in fake.pipelines.values()):
                            return self._reply(409, {"error": f"pipeline {query['name']} already exists"})
                        pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": query["name"],
                                    "namespace": query.get("namespace", ""), "versions": []}
                        fake.pipelines[pipeline["pipeline_id"]] = pipeline
                        version_name = query["name"]
                    else:
                        pipeline = fake.pipelines.get(query.get("pipelineid", ""))
                        if pipeline is None:
                            return self._reply(404, {"error": f"pipeline {query.get('pipelineid')} not found"})
                        version_name = query["name"]
                    version = {"pipeline_version_id": str(uuid.uuid4()), "display_name": version_name,
                               "pipeline_id": pipeline["pipeline_id"], "package": package}
                    pipeline["versions"].append(version)
                    if path == "/pipelines/upload":
                        return self._reply(200, {k: v for k, v in pipeline.items() if k != "versions"})
                    return self._reply(200, {k: v for k, v in version.items() if k != "package"})
                if path == "/runs" and method == "POST":
                    run = dict(body, run_id=str(uuid.uuid4()), state="PENDING")
                    fake.runs[run["run_id"]] = run
                    return self._reply(200, run)
                if path.startswith("/runs/") and method == "GET":
                    run_id = path.split("/")[2]
                    if run_id not in fake.runs:
                        return self._reply(404, {"error": "not found"})
                    return self._reply(200, fake._run_view(run_id))
                if path == "/recurringruns" and method == "POST":
                    rec = dict(body, recurring_run_id=str(uuid.uuid4()))
                    fake.recurring_runs[rec["recurring_run_id"]] = rec
                    return self._reply(200, rec)
                if path == "/recurringruns" and method == "GET":
                    return self._reply(200, {"recurringRuns": list(fake.recurring_runs.values()),  # KFP swagger name
                                             "total_size": len(fake.recurring_runs)})
                if path.startswith("/recurringruns/"):
                    rec_id, _, verb = path.split("/")[2].partition(":")
                    if rec_id not in fake.recurring_runs:
                        return self._reply(404, {"error": f"recurring run {rec_id} not found"})
                    if method == "DELETE":
                        del fake.recurring_runs[rec_id]
                    elif verb in ("enable", "disable"):
                        fake.recurring_runs[rec_id]["mode"] = "ENABLE" if verb == "enable" else "DISABLE"
                    return self._reply(200, {})
                return self._reply(404, {"error": f"no route {method} {url.path}"})

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_DELETE(self):
                self._dispatch("DELETE")

        return Handler


def _multipart(content_type: str, raw: bytes) -> dict:
    """The parts of a multipart/form-data body: name -> text (files as their decoded content)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
            for part in message.iter_parts()}
