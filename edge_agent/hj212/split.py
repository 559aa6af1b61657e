"""Reassembly of split messages (Flag D bit, PNUM packets numbered PNO 1..PNUM; HJ 212-2017 §6.3.3). Pure: the
caller passes the time.

Parts of one message share MN, QN and CN. A part may come again (a retransmission): the later copy wins. When all
PNUM parts are in, their CP contents are joined in PNO order into one packet; a set still incomplete after
``timeout_s`` is given back by ``expire`` for the dead letters. At most ``max_open`` sets are kept; beyond that the
oldest is expired early (a station that never finishes cannot fill the memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.hj212.reasons import Reason, Refused
from edge_agent.hj212.segment import FLAG_D, Packet

Key = tuple[str, str | None, str]  # MN, QN, CN


@dataclass(slots=True)
class _Open:
    pnum: int
    since: float
    parts: dict[int, Packet] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Expired:
    mn: str
    qn: str | None
    cn: str
    missing: tuple[int, ...]
    parts: tuple[Packet, ...]

    @property
    def detail(self) -> str:
        return (
            f"split message QN={self.qn} CN={self.cn} from MN {self.mn}: part(s) {list(self.missing)} of "
            f"{len(self.missing) + len(self.parts)} never came"
        )


class Reassembler:
    def __init__(self, timeout_s: float = 60.0, max_open: int = 1000) -> None:
        self.timeout_s = timeout_s
        self.max_open = max_open
        self._open: dict[Key, _Open] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, part: Packet, now: float) -> tuple[Packet | None, list[Expired]]:
        """The whole message once ``part`` completes it (else None), and any set pushed out to make room.
        ``Refused(bad_split)`` if the part disagrees with the parts before it."""
        assert part.pnum is not None
        assert part.pno is not None
        key: Key = (part.mn, part.qn, part.cn)
        pushed: list[Expired] = []
        entry = self._open.get(key)
        if entry is None:
            if len(self._open) >= self.max_open:
                oldest = min(self._open, key=lambda k: self._open[k].since)
                pushed.append(self._expired(oldest, self._open.pop(oldest)))
            entry = self._open[key] = _Open(part.pnum, now)
        if part.pnum != entry.pnum:
            raise Refused(Reason.BAD_SPLIT, f"PNUM {part.pnum} but earlier parts of QN={part.qn} said {entry.pnum}")
        entry.parts[part.pno] = part
        if len(entry.parts) < entry.pnum:
            return None, pushed
        del self._open[key]
        return _join([entry.parts[i] for i in range(1, entry.pnum + 1)]), pushed

    def expire(self, now: float) -> list[Expired]:
        """Sets whose time ran out, removed."""
        late = [k for k, e in self._open.items() if now - e.since >= self.timeout_s]
        return [self._expired(k, self._open.pop(k)) for k in late]

    @staticmethod
    def _expired(key: Key, entry: _Open) -> Expired:
        missing = tuple(i for i in range(1, entry.pnum + 1) if i not in entry.parts)
        return Expired(key[0], key[1], key[2], missing, tuple(entry.parts[i] for i in sorted(entry.parts)))


def _join(parts: list[Packet]) -> Packet:
    times = {p.data_time for p in parts if p.data_time is not None}
    if len(times) > 1:
        raise Refused(Reason.BAD_SPLIT, f"parts of QN={parts[0].qn} give different DataTimes {sorted(times)}")
    readings = [r for p in parts for r in p.readings]
    keys = [(r.code, r.suffix) for r in readings]
    if len(set(keys)) != len(keys):
        raise Refused(Reason.BAD_SPLIT, f"parts of QN={parts[0].qn} repeat a value")
    first = parts[0]
    flag = None if first.flag is None else first.flag & ~FLAG_D
    return first._replace(
        flag=flag,
        pnum=None,
        pno=None,
        data_time=next(iter(times), None),
        readings=tuple(readings),
        others=tuple(o for p in parts for o in p.others),
    )
