"""The ports the runners choose for servers lie below the kernel's range for outgoing connections, so a server that is
stopped and started again (a broker after an outage) finds its port free: an outgoing connection is never given it."""

from __future__ import annotations

import socket

from lifeline.runners import _ephemeral_floor, free_port


def test_a_chosen_port_is_free_and_below_the_range_of_outgoing_connections() -> None:
    floor = _ephemeral_floor()
    for _ in range(50):
        port = free_port()
        assert 1024 <= port < floor
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))  # free right now: a server may take it


def test_an_outgoing_connection_never_takes_a_port_below_the_range() -> None:
    floor = _ephemeral_floor()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert client.getsockname()[1] >= floor  # what free_port avoids, the kernel hands out
