"""``lifeline deadletter list|show|replay``: the dead letters of the bridge, the edge agents and the HJ 212 ingest.

Stores are named by a service's config (``--config``, repeatable: a bridge config, an edge site file or an HJ 212
config, told apart by their keys) or by file (``--store``). Each config also says where a replay goes: the bridge's
letters to its broker (``publisher`` or ``broker``), an edge's sensor letters to its sensor broker, where the agent
takes them in again; HJ 212 packets and refused commands are never replayed. A letter is marked replayed only once
the broker has acknowledged it (QoS 1 PUBACK); one it did not acknowledge stays pending, and the command says which
and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.config_loader import ConfigError, read_yaml, validate
from infra.deadletter import DeadLetter, DeadLetterStore
from infra.mqtt import BrokerConfig, Link, PublishError, Sendable
from lifeline._run import Subparsers

REPLAY_WINDOW = 100  # publishes awaiting their PUBACK at once


@dataclass(frozen=True, slots=True)
class Source:
    """One service's dead-letter store, and the broker its replayable letters go back to (None: none replayable)."""

    label: str  # "bridge", "edge/<site>", "hj212", or the store file's name
    path: Path | None  # None: the service keeps its letters in memory only
    broker: BrokerConfig | None


def source_of(config: Path) -> Source:
    """The store and replay broker a service config names; its kind is told by its keys (``stations``: HJ 212,
    ``site``: an edge agent, otherwise the bridge). ConfigError names file, line and field."""
    doc = read_yaml(config)
    keys = doc.data if isinstance(doc.data, dict) else {}
    if "stations" in keys:
        from edge_agent.hj212.config import Hj212Config

        hj212 = validate(Hj212Config, doc, "hj212 config")
        return Source("hj212", hj212.dead_letter_path, None)
    if "site" in keys:
        from edge_agent.config import EdgeConfig

        edge = validate(EdgeConfig, doc, "site config")
        return Source(f"edge/{edge.site}", edge.dead_letter_path, edge.sensor_broker or edge.broker)
    from broker_bridge.config import load_bridge_config
    from lifeline.broker_auth import replay_broker

    bridge = load_bridge_config(config)  # replayed as the replay account: the bridge's own may not send telemetry
    return Source("bridge", bridge.dead_letter_path, replay_broker(bridge.publisher or bridge.broker))


def _sources(args: argparse.Namespace) -> list[Source]:
    try:
        found = [source_of(Path(c)) for c in args.config or []]
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    found += [Source(Path(s).name, Path(s), BrokerConfig()) for s in args.store or []]
    if not found:
        from broker_bridge.config import BridgeConfig

        defaults = BridgeConfig()
        found = [Source("bridge", defaults.dead_letter_path, defaults.publisher or defaults.broker)]
    labels: dict[str, int] = {}
    unique = []
    for s in found:  # two stores of one label (two bridges): bridge, bridge#2
        labels[s.label] = labels.get(s.label, 0) + 1
        n = labels[s.label]
        unique.append(s if n == 1 else Source(f"{s.label}#{n}", s.path, s.broker))
    return unique


@dataclass
class Opened:
    source: Source
    store: DeadLetterStore


def _open(sources: Sequence[Source]) -> list[Opened]:
    opened = []
    for s in sources:
        if s.path is None:
            print(f"{s.label}: keeps its dead letters in memory only (no dead_letter_path)", file=sys.stderr)
        elif not s.path.exists():
            print(f"{s.label}: no dead-letter store at {s.path} (nothing was dead-lettered yet?)", file=sys.stderr)
        else:
            opened.append(Opened(s, DeadLetterStore(s.path, source=s.label)))
    return opened


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(o: Opened, letter_id: int, several: bool) -> str:
    return f"{o.source.label}:{letter_id}" if several else str(letter_id)


def _find(opened: list[Opened], ref: str) -> tuple[Opened, int]:
    """``ID`` with one store, ``LABEL:ID`` with several (as ``list`` prints them)."""
    label, _, number = ref.rpartition(":")
    if not number.isdigit():
        raise SystemExit(f"{ref!r}: a dead letter is ID or LABEL:ID (as list prints it)")
    matches = [o for o in opened if o.source.label == label] if label else opened
    if len(matches) != 1:
        known = ", ".join(o.source.label for o in opened) or "none"
        raise SystemExit(f"{ref!r}: name the store as LABEL:ID (stores: {known})")
    return matches[0], int(number)


def list_letters(opened: list[Opened], limit: int, pending_only: bool) -> None:
    several = len(opened) > 1
    for o in opened:
        store = o.store
        pruned = f", {store.pruned} older pruned" if store.pruned else ""
        print(f"{o.source.label}: {store.count()} dead letter(s) in {store.path}{pruned}; newest first:")
        for d in store.list(limit, include_replayed=not pending_only):
            flag = "" if d.replayed_ms is None else f" (replayed {_when(d.replayed_ms)})"
            flag += "" if d.replayable else " (not replayable)"
            print(f"{_ref(o, d.id, several):>8} {_when(d.received_ms)} {d.stage:<8} {d.topic}  {d.reason[:120]}{flag}")


def show(d: DeadLetter) -> None:
    print(f"id:       {d.id}\nsource:   {d.source}\ntime:     {_when(d.received_ms)}\nstage:    {d.stage}")
    print(f"topic:    {d.topic}\nreason:   {d.reason}\nreplayed: {_when(d.replayed_ms)}")
    if not d.replayable:
        print("replay:   never (publishing it again is no retry)")
    try:
        print(f"payload:\n{d.payload.decode('utf-8')}")
    except UnicodeDecodeError:
        print(f"payload (hex):\n{d.payload.hex()}")


async def replay(opened: Opened, letters: Sequence[DeadLetter], timeout_s: float) -> tuple[int, list[str]]:
    """Publish ``letters`` again on their topics; each is marked replayed once the broker acknowledged it.
    Returns how many were, and what failed (``LABEL:ID: reason``); after a failed window the rest are left pending."""
    broker = opened.source.broker
    if broker is None:
        return 0, [f"{opened.source.label}: its letters are not replayable"]
    # MQTT 5 (a session of its own, gone at disconnect): under 3.1.1 Mosquitto acknowledges a message its access
    # control drops, so a PUBACK would not mean the broker took it; under 5 the PUBACK carries the refusal
    link: Link[Sendable] = Link("replay", broker, f"lifeline-replay-{time.time_ns()}", session_expiry_s=0)
    stop = asyncio.Event()
    running = asyncio.ensure_future(link.run(stop))
    replayed, failed = 0, list[str]()
    try:
        for start in range(0, len(letters), REPLAY_WINDOW):
            window = letters[start : start + REPLAY_WINDOW]
            results = await asyncio.gather(
                *(link.publish(d.topic, d.payload, qos=1, timeout_s=timeout_s) for d in window),
                return_exceptions=True,
            )
            for d, result in zip(window, results, strict=True):
                if result is None:
                    opened.store.mark_replayed(d.id, int(time.time() * 1000))  # acknowledged: PUBACK came
                    replayed += 1
                elif isinstance(result, PublishError):
                    failed.append(f"{opened.source.label}:{d.id}: {result}")
                else:
                    raise result
            if failed:  # the broker did not take them: the rest would fail the same way
                left = len(letters) - start - len(window)
                if left:
                    failed.append(f"{opened.source.label}: {left} more left pending")
                break
    finally:
        stop.set()
        await running
    return replayed, failed


def _replay(opened: list[Opened], refs: Sequence[str], timeout_s: float) -> int:
    todo: list[tuple[Opened, list[DeadLetter]]] = []
    if refs:
        chosen: dict[int, tuple[Opened, list[DeadLetter]]] = {}
        for ref in refs:
            o, letter_id = _find(opened, ref)
            letter = o.store.get(letter_id)
            if letter is None:
                raise SystemExit(f"{o.source.label}: no dead letter {letter_id}")
            if not letter.replayable or o.source.broker is None:
                raise SystemExit(f"{ref}: a {letter.stage} letter is never replayed (publishing it again is no retry)")
            chosen.setdefault(id(o), (o, []))[1].append(letter)
        todo = list(chosen.values())
    else:
        todo = [(o, o.store.pending()) for o in opened if o.source.broker is not None]
    replayed, failed = 0, []
    for o, letters in todo:
        if not letters:
            continue
        done, problems = asyncio.run(replay(o, letters, timeout_s))
        replayed += done
        failed += problems
        where = o.source.broker.where if o.source.broker else "-"
        print(f"{o.source.label}: replayed {done} of {len(letters)} dead letter(s) to {where}")
    print(f"replayed {replayed} dead letter(s)")
    for problem in failed:
        print(f"not replayed (still pending): {problem}", file=sys.stderr)
    return 1 if failed else 0


def deadletter(args: argparse.Namespace) -> int:
    opened = _open(_sources(args))
    try:
        if args.action == "list":
            list_letters(opened, args.limit, args.pending)
            return 0
        if not opened:
            print("no dead-letter store to read", file=sys.stderr)
            return 1
        if args.action == "show":
            o, letter_id = _find(opened, args.id)
            letter = o.store.get(letter_id)
            if letter is None:
                print(f"{o.source.label}: no dead letter {letter_id}", file=sys.stderr)
                return 1
            show(letter)
            return 0
        return _replay(opened, args.ids, args.timeout)
    finally:
        for o in opened:
            o.store.close()


def add_parsers(sub: Subparsers) -> None:
    """``lifeline deadletter``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    dl = sub.add_parser("deadletter", help="read and replay the dead letters of the bridge, edge agents and HJ 212")
    dl.add_argument(
        "--config",
        action="append",
        metavar="SERVICE.yaml",
        help="a bridge config, edge site file or HJ 212 config: its store, and where a replay goes "
        "(repeat for several; default: the bridge's default config)",
    )
    dl.add_argument(
        "--store",
        action="append",
        metavar="PATH",
        help="a dead-letter store file (repeatable); replays go to the default local broker",
    )
    dl_sub = dl.add_subparsers(dest="action", required=True)
    ls = dl_sub.add_parser("list", help="newest first, per store")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--pending", action="store_true", help="only those not replayed yet")
    show_p = dl_sub.add_parser("show", help="one dead letter in full")
    show_p.add_argument("id", help="ID, or LABEL:ID with several stores (as list prints it)")
    rp = dl_sub.add_parser("replay", help="publish again on their topics (all pending replayable ones, or those named)")
    rp.add_argument("ids", nargs="*", help="ID or LABEL:ID")
    rp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker (connection, PUBACK)")
    dl.set_defaults(func=deadletter)
