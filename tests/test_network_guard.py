import socket

import pytest

from tests.conftest import NetworkAccessError


def test_non_loopback_connect_fails_loudly():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkAccessError, match="only loopback"):
            sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routable
    finally:
        sock.close()


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()
