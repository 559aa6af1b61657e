"""The edge's memory of command ids: the last result of each, so that a command delivered twice runs once.

Kept in a JSON-lines file (appended and fsynced per result, rewritten when it grows or a line is broken);
``edge_agent.commands`` re-exports ``CommandLog``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

from pydantic import ValidationError

from telemetry.commands import CommandResult, ResultState

log = logging.getLogger("lifeline.edge.commands")  # the executor's logger: one audit trail for commands

DAY_MS = 86_400_000


class CommandLog:
    """The last result of every command id seen, bounded by count and age, kept in a JSON-lines file if given.

    ``accepted`` is written too, so that a command the agent was running when it died is known after a restart:
    ``interrupted()`` turns those into ``failed`` results.
    """

    def __init__(self, path: Path | None, *, max_ids: int = 10_000, max_age_ms: int = 7 * DAY_MS) -> None:
        self.path, self.max_ids, self.max_age_ms = path, max_ids, max_age_ms
        self.results: OrderedDict[str, CommandResult] = OrderedDict()
        self._lines = 0
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        bad = 0
        for line in path.read_bytes().splitlines():
            try:
                result = CommandResult.model_validate_json(line)
            except ValidationError:
                bad += 1  # a line cut short by a crash: the ids before it still count
                continue
            self.results.pop(result.id, None)
            self.results[result.id] = result
        if bad:
            log.warning("command log file=%s unreadable_lines=%d action=skipped, file rewritten", path, bad)
            self._rewrite()  # so that the next line is not appended to a broken one
        else:
            self._lines = len(self.results)

    def get(self, command_id: str) -> CommandResult | None:
        return self.results.get(command_id)

    def interrupted(self, now_ms: int) -> list[CommandResult]:
        """Commands left without a final result (the agent stopped or died), now recorded as failed."""
        ended = [
            r.model_copy(
                update={
                    "state": ResultState.FAILED,
                    "ts": now_ms,
                    "opening_m": None,
                    "reason": "the edge agent stopped while the command ran",
                }
            )
            for r in self.results.values()
            if not r.final
        ]
        for r in ended:
            self.put(r, now_ms)
        return ended

    def hold(self, result: CommandResult) -> None:
        """Take an id in memory only, until its first result is ``put``."""
        self.results[result.id] = result

    def put(self, result: CommandResult, now_ms: int) -> None:
        self.results.pop(result.id, None)
        self.results[result.id] = result
        self._prune(now_ms)
        if self.path is None:
            return
        if self._lines > 2 * self.max_ids or not self.path.exists():
            self._rewrite()
            return
        with self.path.open("ab") as f:
            f.write(result.model_dump_json().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())  # the id must survive a power cut, or the command could run twice
        self._lines += 1

    def _prune(self, now_ms: int) -> None:
        while self.results and (
            len(self.results) > self.max_ids or next(iter(self.results.values())).ts < now_ms - self.max_age_ms
        ):
            self.results.popitem(last=False)

    def _rewrite(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(r.model_dump_json().encode() + b"\n" for r in self.results.values()))
        os.replace(tmp, self.path)
        self._lines = len(self.results)
