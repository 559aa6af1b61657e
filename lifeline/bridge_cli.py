"""``lifeline bridge`` and ``lifeline deadletter list|show|replay``."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from broker_bridge.config import BridgeConfig, load_bridge_config
from broker_bridge.deadletter import DeadLetter, DeadLetterStore
from broker_bridge.validate import KnownSite
from infra import logs
from infra.config_loader import ConfigError
from infra.gc_tuning import tune_for_throughput
from infra.mqtt_config import configure_client
from lifeline._run import Subparsers, run_until_signal


def _config(path: str | None) -> BridgeConfig:
    if path is None:
        return BridgeConfig()
    try:
        return load_bridge_config(Path(path))
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc


def known_site(path: Path) -> KnownSite:
    """A site file read by the edge's own loader, as the bridge's validation needs it."""
    from edge_agent.config import load_site

    site = load_site(path)
    return KnownSite(site.config.site, dict(site.profiles), site.published_devices())


def run_bridge(args: argparse.Namespace) -> int:
    from broker_bridge.bridge import Bridge  # imported when run: the CLI starts without it

    config = _config(args.config)
    logs.setup(args.log_level)
    bridge = Bridge(config, load_site=known_site)
    tune_for_throughput()
    return run_until_signal(bridge.run)


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _store(args: argparse.Namespace) -> DeadLetterStore:
    path = Path(args.store) if args.store else _config(args.config).dead_letter_path
    if not path.exists():
        raise SystemExit(f"{path}: no dead-letter store here (nothing was dead-lettered yet?)")
    return DeadLetterStore(path)


def deadletter(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        if args.action == "list":
            letters = store.list(args.limit, include_replayed=not args.pending)
            print(f"{store.count()} dead letter(s) in {store.path}; newest first:")
            for d in letters:
                flag = "" if d.replayed_ts_ms is None else f" (replayed {_when(d.replayed_ts_ms)})"
                print(f"{d.id:>6} {_when(d.ts_ms)} {d.stage:<8} {d.topic}  {d.error[:120]}{flag}")
            return 0
        if args.action == "show":
            letter = store.get(args.id)
            if letter is None:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            _show(letter)
            return 0
        return _replay(args, store)
    finally:
        store.close()


def _show(d: DeadLetter) -> None:
    print(f"id:       {d.id}\ntime:     {_when(d.ts_ms)}\nstage:    {d.stage}\ntopic:    {d.topic}")
    print(f"error:    {d.error}\nreplayed: {_when(d.replayed_ts_ms)}")
    try:
        print(f"payload:\n{d.payload.decode('utf-8')}")
    except UnicodeDecodeError:
        print(f"payload (hex):\n{d.payload.hex()}")


def _replay(args: argparse.Namespace, store: DeadLetterStore) -> int:
    """Publish dead letters again on their topics (after the cause was fixed); the bridge takes them as new."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    config = _config(args.config)
    letters = [store.get(i) for i in args.ids] if args.ids else list(store.pending())
    todo = [d for d in letters if d is not None]
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"lifeline-replay-{time.time_ns()}"
    )
    configure_client(client, config.publisher or config.broker)
    replay = config.publisher or config.broker
    client.connect(replay.host, replay.port)
    client.loop_start()
    try:
        for d in todo:
            client.publish(d.topic, d.payload, qos=1).wait_for_publish(10)
            store.mark_replayed(d.id, int(time.time() * 1000))
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"replayed {len(todo)} dead letter(s) to {config.broker.host}:{config.broker.port}")
    return 0


def add_parsers(sub: Subparsers) -> None:
    """``lifeline bridge`` and ``lifeline deadletter``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    br = sub.add_parser("bridge", help="run the MQTT to InfluxDB bridge")
    br.add_argument("--config", metavar="BRIDGE.yaml", help="bridge config (default: local broker and InfluxDB)")
    br.set_defaults(func=run_bridge)

    dl = sub.add_parser("deadletter", help="read and replay the bridge's dead letters")
    dl.add_argument("--config", metavar="BRIDGE.yaml", help="bridge config: the store and the broker to replay to")
    dl.add_argument("--store", help="dead-letter store file (default: the config's dead_letter_path)")
    dl_sub = dl.add_subparsers(dest="action", required=True)
    ls = dl_sub.add_parser("list", help="newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--pending", action="store_true", help="only those not replayed yet")
    show = dl_sub.add_parser("show", help="one dead letter in full")
    show.add_argument("id", type=int)
    rp = dl_sub.add_parser("replay", help="publish again on their topics (all pending, or the ids given)")
    rp.add_argument("ids", type=int, nargs="*")
    dl.set_defaults(func=deadletter)
