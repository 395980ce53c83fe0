"""Test-suite wide settings.

Any attempt to reach a non-loopback address fails loudly: components must not touch the network unless
that is their job, and those are tested through their offline paths (dry-run, manifests, local servers).
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KFPC_TEST", "1")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to reach a host other than this machine."""


def _check(address) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return
    host = address[0]
    if host in ("localhost", "") or host.startswith("127.") or host == "::1":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise NetworkAccessError(f"test tried to reach {host}:{address[1]}: only loopback is allowed in tests")


def _guarded_connect(self, address):
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~20 s (still part of make test)")
    config.addinivalue_line("markers", "e2e: an end-to-end proof of several minutes (whole pipelines run twice, "
                                       "multi-process training): `make test-e2e`, which .ci/run runs after make test")


@pytest.fixture(scope="session")
def repo_root():
    """The repository root."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def penguins_csv(repo_root):
    """The bundled Palmer Penguins CSV."""
    return os.path.join(repo_root, "pipelines", "data", "penguins.csv")
