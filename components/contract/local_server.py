"""Run the kfpc model server (``python -m kfpc.serving``, started by module name: no import of
kfpc.serving here) on 127.0.0.1 in a subprocess, for push's smoke test, tests and ``make run``.

    with LocalServer("out/model", model_name="penguins") as server:
        requests.post(f"{server.url}/v1/models/penguins:predict", json={"instances": [...]})
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ServerStartError(RuntimeError):
    """The server process exited or did not become ready in time; the message holds its log tail."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """``python -m kfpc.serving`` in a subprocess, ready on exit from ``__enter__``, stopped on ``__exit__``.

    Args:
        model_dir: the Model artifact folder or its version folder.
        model_name: the model name in URLs.
        port: HTTP port; 0 picks a free one.
        grpc_port: gRPC port; 0 picks a free one, None disables gRPC.
        startup_timeout: seconds to wait for ``/v2/models/<name>/ready``.
        env: extra environment variables for the server process.
        **options: more server flags, e.g. ``batching=False``, ``max_batch_size=64``,
            ``payload_log="/tmp/p.jsonl"`` (each becomes ``--<name> <value>``).
    Attributes:
        url: ``http://127.0.0.1:<port>`` once started.
        grpc_url: ``127.0.0.1:<grpc_port>`` or None.
        log_path: the server's combined stdout/stderr.
    """

    def __init__(self, model_dir: str | os.PathLike, model_name: str = "model", port: int = 0,
                 grpc_port: int | None = None, startup_timeout: float = 120.0, env: dict[str, str] | None = None,
                 **options: Any):
        self.model_dir = str(model_dir)
        self.model_name = model_name
        self.port = port or free_port()
        self.grpc_port = None if grpc_port is None else (grpc_port or free_port())
        self.startup_timeout = startup_timeout
        self.env = env or {}
        self.options = options
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_url = None if self.grpc_port is None else f"127.0.0.1:{self.grpc_port}"
        self.process: subprocess.Popen | None = None
        self._log_file: Any = None
        self.log_path: Path | None = None

    def command(self) -> list[str]:
        """The server command line."""
        command = [sys.executable, "-m", "kfpc.serving", "--model_dir", self.model_dir,
                   "--model_name", self.model_name, "--http_port", str(self.port), "--host", "127.0.0.1",
                   "--exit_with_parent", "true"]
        if self.grpc_port is None:
            command += ["--enable_grpc", "false"]
        else:
            command += ["--grpc_port", str(self.grpc_port)]
        for name, value in self.options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            command += [f"--{name}", str(value)]
        return command

    def start(self) -> LocalServer:
        """Start the process and wait until the model answers ready.

        Raises:
            ServerStartError: the process exited or timed out; the message holds the log tail.
        """
        handle, path = tempfile.mkstemp(prefix=f"kfpc-serve-{self.model_name}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, **self.env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.process = subprocess.Popen(self.command(), stdout=self._log_file, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout
        ready_url = f"{self.url}/v2/models/{self.model_name}/ready"
        while True:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise ServerStartError(f"kfpc server for {self.model_dir} exited with code "
                                       f"{self.process.returncode} before it was ready:\n{tail}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200 and json.loads(response.read()).get("ready"):
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise ServerStartError(f"kfpc server for {self.model_dir} not ready after {self.startup_timeout}s:"
                                       f"\n{tail}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
