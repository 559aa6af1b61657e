"""The path syntax of MQTT points (``data.ch[0].v``): dotted keys and ``[index]``. Shared by decoders and simulators."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """``data.ch[0].v`` -> ['data', 'ch', 0, 'v']."""
    return [int(index) if index else key for key, index in _TOKEN.findall(path)]
