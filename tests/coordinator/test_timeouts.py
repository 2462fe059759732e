"""``server.read_timeout`` and ``write_timeout`` bound ordinary requests, never the stream."""

from __future__ import annotations

import socket
import time

import httpx

from tests.coordinator.harness import coordinator, make_settings


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    settings = make_settings(server={"read_timeout": "300ms"})
    with coordinator(settings) as (base, _):
        with socket.create_connection(("127.0.0.1", _port(base))) as sock:
            sock.sendall(
                b"POST /api/v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"id": '
            )
            sock.settimeout(10)
            started = time.monotonic()
            answer = b""
            while b"read_timeout" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started >= 0.25
        # a complete request is unaffected
        assert httpx.get(f"{base}/api/v1/nodes").status_code == 200


def test_a_client_that_does_not_read_is_dropped_after_write_timeout() -> None:
    settings = make_settings(server={"write_timeout": "300ms"}, registry={"node_timeout": "1h"})
    big = {f"k{i}": "x" * 4000 for i in range(200)}  # at most 256 labels of 4096
    with coordinator(settings) as (base, _):
        for i in range(10):  # ~8 MB of node list, more than the socket buffers hold
            body = {"id": f"n{i}", "address": "127.0.0.1", "port": 9, "labels": big}
            assert httpx.post(f"{base}/api/v1/nodes", json=body).status_code == 201
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", _port(base)))
            sock.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
            # read nothing for longer than write_timeout: the slow reader IS what is tested
            time.sleep(1.5)
            sock.settimeout(10)
            received = 0
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
            assert received < 8_000_000  # the connection ended before the whole answer
        assert httpx.get(f"{base}/health").status_code == 200
