"""Run the kfpc model server on 127.0.0.1 in a subprocess, for smoke tests and ``make run``.

    with LocalServer("out/model", model_name="penguins") as server:
        requests.post(f"{server.url}/v1/models/penguins:predict", json={"instances": [...]})

The launcher lives in :mod:`kfpc.components.contract.local_server` (push's local smoke test starts the
server with it, and components never import ``kfpc.serving``); this is its name on the serving side.
"""

from kfpc.components.contract.local_server import LocalServer, ServerStartError, free_port

__all__ = ["LocalServer", "ServerStartError", "free_port"]
