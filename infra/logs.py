"""Structured logs: one line per event, ``key=value`` pairs, on standard error."""

from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pymodbus logs every failed request of a dead device; our poller logs the state change once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # httpx logs every request with its URL at INFO: noise at our rates, and a URL may carry what it should not
    logging.getLogger("httpx").setLevel(logging.WARNING)
