"""The test and bench harness: the product's server runners with kill, restart, port checks and accounts made at
run time (:mod:`testing.servers`), accounts only tests and benches use (:mod:`testing.accounts`), and Lifeline's
services run as processes (:mod:`testing.process`).

Tests and benches import it; no product package does (``tests/unit/test_layers.py``)."""

from __future__ import annotations

from lifeline.runners import ServiceError, find_binary, free_port, wait_for_port
from testing.accounts import control_account, open_account
from testing.process import ServiceProcess
from testing.servers import ChildServer, Influxd, Mosquitto, owns_port

__all__ = [
    "ChildServer",
    "Influxd",
    "Mosquitto",
    "ServiceError",
    "ServiceProcess",
    "control_account",
    "find_binary",
    "free_port",
    "open_account",
    "owns_port",
    "wait_for_port",
]
