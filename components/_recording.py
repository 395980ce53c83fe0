"""Record instead of send: route an OpenAPI-generated client's HTTP calls (``kubernetes.client``,
``kfp_server_api``) to an in-process pool, so a dry run serializes exactly what the real call would send.

Both generated clients send through ``api_client.rest_client.pool_manager`` (a urllib3 ``PoolManager``);
that private attribute is replaced here only, and checked first, so a client release that moves it fails
loudly instead of sending for real.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode


class RecordingPool:
    """Stands in for urllib3's pool manager; subclasses answer (or stop) in :meth:`answer`."""

    def install(self, api_client):
        """Route ``api_client``'s HTTP calls to this pool; returns ``api_client``."""
        rest = getattr(api_client, "rest_client", None)
        if rest is None or not hasattr(rest, "pool_manager"):
            raise RuntimeError(f"{type(api_client).__module__}.{type(api_client).__name__} has no "
                               "rest_client.pool_manager: this client version cannot be recorded")
        rest.pool_manager = self
        return api_client

    def request(self, method, url, body=None, fields=None, headers=None, encode_multipart=None, **_kwargs):
        payload = json.loads(body) if isinstance(body, (str, bytes)) and body else body
        if fields and encode_multipart:  # a file upload: each part by name, a file as its name and size
            payload = {name: ({"filename": value[0], "bytes": len(value[1])} if isinstance(value, tuple) else value)
                       for name, value in fields}
        elif fields:  # GET/HEAD: urllib3 would encode the query parameters into the URL
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(fields)}"
        return self.answer(method, url, dict(headers or {}), payload)

    def answer(self, method: str, url: str, headers: dict[str, Any], payload: Any):
        """Record the request and return a response (or raise to stop the call)."""
        raise NotImplementedError
