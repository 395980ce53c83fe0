"""A minimal Cloud Storage JSON API on 127.0.0.1 for the real ``google-cloud-storage`` client.

Enough of the API for pushing a model: object listing (prefix, pagination), multipart upload with
``ifGenerationMatch`` preconditions (412 when an object would be overwritten, as the real service answers),
media download and delete. Objects live in a dict ``{(bucket, name): bytes}``.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit


class FakeGCS:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str, dict]] = []
        #: (bucket, name) of every successful upload, in order
        self.uploads: list[tuple[str, str]] = []
        self._generation = itertools.count(1_700_000_000_000_000)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client(self):
        """A real ``google.cloud.storage.Client`` pointed at this server, anonymous."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),
                              client_options=ClientOptions(api_endpoint=self.url))

    def names(self, bucket: str) -> list[str]:
        return sorted(name for b, name in self.objects if b == bucket)

    def _resource(self, bucket: str, name: str) -> dict:
        data = self.objects[(bucket, name)]
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
                "generation": str(self.generations[(bucket, name)]), "metageneration": "1"}

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict | bytes]:
        parts = urlsplit(path)
        query = dict(parse_qsl(parts.query))
        segments = [unquote(s) for s in parts.path.split("/") if s]
        with self._lock:
            self.requests.append((method, parts.path, query))
            if method == "POST" and segments[:4] == ["upload", "storage", "v1", "b"] and segments[5:] == ["o"]:
                bucket = segments[4]
                if query.get("uploadType") != "multipart":
                    return 400, {"error": {"code": 400, "message": "only multipart uploads in this fake"}}
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
                )
                meta_part, data_part = list(message.iter_parts())
                meta = json.loads(meta_part.get_payload(decode=True))
                name = meta.get("name") or query.get("name")
                key = (bucket, name)
                if "ifGenerationMatch" in query:
                    wanted = int(query["ifGenerationMatch"])
                    if self.generations.get(key, 0) != wanted:
                        return 412, {"error": {"code": 412, "message": "At least one of the pre-conditions you "
                                               "specified did not hold.", "errors": [{"reason": "conditionNotMet"}]}}
                self.objects[key] = data_part.get_payload(decode=True)
                self.generations[key] = next(self._generation)
                self.uploads.append(key)
                return 200, self._resource(bucket, name)
            if segments[:3] == ["storage", "v1", "b"] and len(segments) >= 5 and segments[4] == "o":
                bucket = segments[3]
                if method == "GET" and len(segments) == 5:
                    prefix = query.get("prefix", "")
                    names = [n for n in self.names(bucket) if n.startswith(prefix)]
                    start = int(query.get("pageToken", 0))
                    size = int(query.get("maxResults", 1000))
                    page = names[start:start + size]
                    out = {"kind": "storage#objects", "items": [self._resource(bucket, n) for n in page]}
                    if start + size < len(names):
                        out["nextPageToken"] = str(start + size)
                    return 200, out
                name = "/".join(segments[5:])
                key = (bucket, name)
                if key not in self.objects:
                    return 404, {"error": {"code": 404, "message": f"No such object: {bucket}/{name}"}}
                if method == "DELETE":
                    del self.objects[key]
                    del self.generations[key]
                    return 204, b""
                if method == "GET":
                    if query.get("alt") == "media":
                        return 200, self.objects[key]
                    return 200, self._resource(bucket, name)
            if segments[:3] == ["download", "storage", "v1"] and method == "GET":
                bucket, name = segments[4], "/".join(segments[6:])
                if (bucket, name) not in self.objects:
                    return 404, {"error": {"code": 404, "message": "No such object"}}
                return 200, self.objects[(bucket, name)]
            return 404, {"error": {"code": 404, "message": f"fake GCS does not serve {method} {parts.path}"}}

    def __enter__(self) -> FakeGCS:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                code, payload = fake.handle(self.command, self.path, self.headers, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
