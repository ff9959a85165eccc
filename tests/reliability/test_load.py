"""A bounded load run on loopback: jobs submitted at once, every one ends once, no task twice.
`make reliability` runs the full 200; the suite runs a smaller batch beside its other workers."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from reliability.scenarios import run_load


# On the browser tests' worker (make test: --dist loadgroup), so Chromium never takes the CPU from
# this run, whose upstream answers have a second each (QUICK_PARAMETERS).
@pytest.mark.xdist_group("browser")
def test_concurrent_jobs_all_end_once(stack, emulator):
    result = run_load(stack, jobs=60, workers=10)

    assert result["accepted"] == result["distinct_ids"] == 60, result["refused"]
    assert result["lost"] == 0
    assert result["succeeded"] == 60
    assert result["upstream_tasks"] == 60
    assert result["upstream_tasks_started_twice"] == 0


@pytest.mark.parametrize("server", ["api front", "novita emulator"])
def test_a_burst_of_connections_is_queued_not_dropped(stack, emulator, server):
    """300 clients connecting at once are all taken into the listen queue, like at API Gateway.

    A short listen backlog makes the kernel drop or reset the connections that do not fit: the
    client sees a reset, or a SYN retransmitted after a second, which the connect timeout catches.
    """
    address = urlsplit(stack.api_url if server == "api front" else emulator.url)
    clients = 300
    all_ready = threading.Barrier(clients)

    def connect(_: int) -> socket.socket:
        all_ready.wait()  # released together, so the connections arrive faster than they are accepted
        return socket.create_connection((address.hostname, address.port), timeout=2)

    with ThreadPoolExecutor(clients) as pool:
        connections = list(pool.map(connect, range(clients)))
    try:
        for connection in connections:
            connection.sendall(b"GET /no-such-route HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        answers = [connection.recv(64) for connection in connections]
    finally:
        for connection in connections:
            connection.close()

    assert all(answer.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")) for answer in answers)
