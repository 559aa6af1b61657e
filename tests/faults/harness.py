"""A small district running as it does in production, for the fault suite: a real Mosquitto (closed: accounts and
access as `lifeline up` makes them), a real influxd, the bridge, the rules engine and one edge agent per site as
child processes, and the mini district's simulated devices on a loop thread of this process.

Each edge agent keeps a sample journal (``sample_journal``: every telemetry message once it is in its outbox file);
:meth:`FaultDistrict.check_stored` compares it with what InfluxDB holds, per device and sample time.
Everything listens on loopback, on free ports; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from alerts.store import AlertStore
from infra.mqtt import BrokerConfig
from lifeline.broker_auth import credential, district_deployment, platform_accounts, write_credentials
from lifeline.simulate import give_site_credentials
from simulators import District, load_scenario, plan
from testing import Influxd, Mosquitto
from tests.helpers import LoopThread

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / "rules" / "packs"
DATABASE = "lifeline"
SCENARIO = "mini"


class Child:
    """A Lifeline service in a process of its own (``python -m lifeline ...``), with its log in a file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lifeline", *self.argv],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM: the service's clean stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rss_kib(self) -> int:
        """Resident memory now (0 once it has gone)."""
        if self.proc is None:
            return 0
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)


class FaultDistrict:
    """The mini district and its platform; ``sensor_broker`` gives the MQTT sensors a site broker of their own.

    ``production_reconnect``: every client comes back after a lost broker as ``lifeline up`` runs it (the transport's
    defaults: first retry within 1 s, at most 30 s between attempts; the simulated sensors' own 1-2 s), not with the
    quick 1 s cap the other cases use. ``packs``: the rule packs the engine runs (default: gas and edge; ``"shipped"``:
    every pack the project ships). ``webhook_url``: the alerts are also notified there (a test's HTTP receiver).
    """

    def __init__(
        self,
        tmp: Path,
        *,
        sensor_broker: bool = False,
        outbox_max_bytes: int | None = None,
        production_reconnect: bool = False,
        packs: str | None = None,
        webhook_url: str | None = None,
        state_dirs: dict[str, Path] | None = None,
    ) -> None:
        self.tmp = tmp
        self.state_dirs = state_dirs or {}  # an edge's state folder (its outbox) elsewhere, e.g. on a small disk
        self.packs = sorted(PACKS.glob("*.yaml")) if packs == "shipped" else [PACKS / "gas.yaml", PACKS / "edge.yaml"]
        self.webhook_url = webhook_url
        self.scenario = load_scenario(SCENARIO)
        self.accounts = platform_accounts(district_deployment(plan(self.scenario)))
        self.credentials = tmp / "credentials"
        write_credentials(self.credentials, self.accounts)
        self.broker = Mosquitto(tmp / "mosquitto", accounts=self.accounts, control=True)
        self.broker.start()
        self.site_broker: Mosquitto | None = None
        if sensor_broker:  # a broker at the site: sensors reach the edge without the uplink (WAN, centre)
            self.site_broker = Mosquitto(tmp / "site-mosquitto", accounts=self.accounts, control=True)
            self.site_broker.start()
        self.influx = Influxd(tmp / "influxdb")
        self.influx.start()
        self.influx.create_database(DATABASE)
        quick: dict[str, Any] = {} if production_reconnect else {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}
        self.base = BrokerConfig(port=self.broker.port, **quick)
        sensors_at = self.site_broker or self.broker
        self.sensor_base = BrokerConfig(port=sensors_at.port, **quick)
        self.district: District | None = None
        # the MQTT sensors' readings the broker acknowledged, sample times (ms) per ``site/device``
        self.sensor_readings: dict[str, set[int]] = defaultdict(set)
        # every reading the sensors made, and those a sensor dropped for a newer one while its broker was away
        self.sensor_made: dict[str, set[int]] = defaultdict(set)
        self.sensor_dropped: dict[str, set[int]] = defaultdict(set)
        self._readings_lock = threading.Lock()
        self.thread = LoopThread(self._run_district)
        deadline = time.monotonic() + 15
        while self.district is None or not self.district.modbus["gate-1"].port:
            assert time.monotonic() < deadline, f"district did not start: {self.thread.error}"
            time.sleep(0.02)
        self.store_url: str = f"sqlite:///{tmp / 'alerts.db'}"
        sites = sorted(self.district.sites)
        self.edges: dict[str, Child] = {site: self._edge(site, outbox_max_bytes) for site in sites}
        self.bridge: Child = self._bridge()
        self.rules: Child = self._rules()
        for child in (self.bridge, self.rules, *self.edges.values()):
            child.start()

    # -- set-up -------------------------------------------------------------------------------------------------
    async def _run_district(self, stop: asyncio.Event) -> None:
        sim = credential(self.credentials, "sim-sensors", self.sensor_base)
        district = District(
            self.scenario, "127.0.0.1", self.sensor_base.port, step_interval_s=0.1, sensor_credentials=sim
        )
        sites = {d.id: d.site for d in district.planned}
        sensors = district.sensors.sensors

        def into(readings: dict[str, set[int]]) -> Any:
            def record(device: str, at: float) -> None:
                spec = sensors[device].profile.mqtt
                seconds = spec is not None and spec.timestamp is not None and spec.timestamp.format.value == "epoch_s"
                with self._readings_lock:  # the sample time the edge reads from the vendor's timestamp
                    readings[f"{sites[device]}/{device}"].add(int(at) * 1000 if seconds else int(at * 1000))

            return record

        district.sensors.on_published = into(self.sensor_readings)
        district.sensors.on_reading = into(self.sensor_made)
        district.sensors.on_replaced = into(self.sensor_dropped)
        await district.start()
        self.district = district
        try:
            await stop.wait()
        finally:
            await district.stop()

    def on_loop(self, fn: Any) -> None:
        self.thread.call(fn)

    def _edge(self, site: str, outbox_max_bytes: int | None) -> Child:
        assert self.district is not None
        path = self.tmp / "sites" / f"{site}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dict(self.district.site_config(site))))
        state = self.state_dirs.get(site, self.tmp / "edge" / site)
        journal = self.tmp / "edge" / site / "journal.jsonl"  # beside the state folder: counted whatever its disk
        journal.parent.mkdir(parents=True, exist_ok=True)
        publish: dict[str, object] = {"ack_timeout_s": 5.0, "replay_rate": 2000.0, "health_interval_s": 2.0}
        if outbox_max_bytes is not None:
            publish["outbox_max_bytes"] = outbox_max_bytes
        give_site_credentials(
            path,
            self.credentials,
            self.base,
            state_dir=str(state),
            dead_letter_path=str(state / "deadletter.sqlite"),
            sample_journal=str(journal),
            publish=publish,
            modbus={"timeout_s": 0.5, "connect_timeout_s": 0.5, "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
        )
        config = yaml.safe_load(path.read_text())
        if self.site_broker is not None and "sensor_broker" in config:
            sensors = credential(self.credentials, f"edge-{site}-sensors", self.sensor_base)
            config["sensor_broker"] = sensors.model_dump(mode="json", exclude_defaults=True)
            path.write_text(yaml.safe_dump(config))
            path.chmod(0o600)
        return Child(f"edge {site}", ["edge", "--config", str(path)], self.tmp / f"edge-{site}.log")

    def _service_config(self, name: str, config: dict[str, Any]) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _bridge(self) -> Child:
        config = {
            "broker": self._account("bridge-1"),
            "publisher": self._account("bridge-1-pub"),
            "subscription": {"client_id": "bridge-1", "receive_maximum": 2000},
            "influx": {"url": self.influx.url, "database": DATABASE, "timeout_s": 2.0},
            "batch": {"max_points": 5000, "max_delay_s": 0.2},
            "retry": {"initial_s": 0.2, "max_s": 1.0},
            "validation": {"sites": [str(self.tmp / "sites")]},
            "dead_letter_path": str(self.tmp / "bridge-dead.sqlite"),
        }
        return Child(
            "bridge", ["bridge", "--config", str(self._service_config("bridge", config))], self.tmp / "bridge.log"
        )

    def _rules(self) -> Child:
        channels: dict[str, Any] = {"bus": {"type": "mqtt"}}
        if self.webhook_url is not None:
            channels["hook"] = {"type": "webhook", "url": self.webhook_url}
        config = {
            "broker": self._account("rules-1"),
            "publisher": self._account("rules-1-pub"),
            "rules": {"packs": [str(p) for p in self.packs], "checkpoint_s": 0.5, "tick_s": 0.2},
            "alerts": {
                "store_url": self.store_url,
                "tick_s": 0.2,
                "notify": {"channels": channels, "routes": [{"channels": sorted(channels)}]},
            },
        }
        return Child(
            "rules", ["rules", "run", "--config", str(self._service_config("rules", config))], self.tmp / "rules.log"
        )

    def _account(self, username: str) -> dict[str, Any]:
        return credential(self.credentials, username, self.base).model_dump(mode="json", exclude_defaults=True)

    # -- faults -------------------------------------------------------------------------------------------------
    def running(self, seconds: float = 4.0) -> None:
        """Let the district run, and make sure readings flow before the fault."""
        time.sleep(seconds)
        deadline = time.monotonic() + 30
        while not self.stored():
            assert time.monotonic() < deadline, "no reading in InfluxDB within 30 s before the fault"
            time.sleep(0.5)

    def leak(self, device: str = "gas-1", peak: float = 60.0) -> int:
        """A gas leak at ``peak`` %LEL at once on a gas detector (the shipped pack: critical at 50); when (ms)."""
        assert self.district is not None
        sensors = self.district.sensors
        self.on_loop(lambda: sensors.leak(device, peak=peak, rise_s=0.0))
        return now_ms()

    def kill_broker(self) -> None:
        self.broker.kill()

    def start_broker(self) -> None:
        self.broker.start()

    def freeze_influx(self) -> None:
        assert self.influx.proc is not None
        self.influx.proc.send_signal(signal.SIGSTOP)

    def thaw_influx(self) -> None:
        assert self.influx.proc is not None
        self.influx.proc.send_signal(signal.SIGCONT)

    # -- what was taken, what is stored ---------------------------------------------------------------------------
    def journal(self) -> dict[str, list[int]]:
        """Sample times per device (``site/device``) of every telemetry message the edges took for good."""
        out: dict[str, list[int]] = defaultdict(list)
        for site in self.edges:
            path = self.tmp / "edge" / site / "journal.jsonl"
            for line in path.read_bytes().splitlines() if path.exists() else []:
                entry = orjson.loads(line)
                if entry["device"] != "edge":  # the agent's own health is not a sampled reading
                    out[f"{site}/{entry['device']}"].extend(entry["ts"])
        return out

    def stored(self) -> dict[str, list[int]]:
        """Sample times per device that InfluxDB holds (every measurement, every point)."""
        out: dict[str, list[int]] = defaultdict(list)
        resp = httpx.get(
            f"{self.influx.url}/query", params={"db": DATABASE, "epoch": "ms", "q": "SHOW MEASUREMENTS"}, timeout=10
        )
        series = resp.json()["results"][0].get("series") or [{"values": []}]
        for (measurement,) in series[0]["values"]:
            q = f'SELECT * FROM "{measurement}"'
            rows = (
                httpx.get(f"{self.influx.url}/query", params={"db": DATABASE, "epoch": "ms", "q": q}, timeout=30)
                .json()["results"][0]
                .get("series", [])
            )
            for s in rows:
                cols = s["columns"]
                t, site, device = cols.index("time"), cols.index("site"), cols.index("device")
                for row in s["values"]:
                    if row[device] != "edge":
                        out[f"{row[site]}/{row[device]}"].append(row[t])
        return out

    def wait_all_stored(
        self,
        timeout_s: float = 60.0,
        cutoff_ms: int | None = None,
    ) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """Until every sample journalled up to ``cutoff_ms`` (default: 2 s ago) is in InfluxDB, or the time is up;
        returns (journal, stored), both up to the cut-off (the district goes on sampling meanwhile)."""
        cutoff = cutoff_ms if cutoff_ms is not None else now_ms() - 2_000
        deadline = time.monotonic() + timeout_s
        while True:
            journal = {d: [t for t in ts if t <= cutoff] for d, ts in self.journal().items()}
            stored = {d: [t for t in ts if t <= cutoff] for d, ts in self.stored().items()}
            missing = {d: set(ts) - set(stored.get(d, [])) for d, ts in journal.items()}
            if not any(missing.values()) or time.monotonic() > deadline:
                return journal, stored
            time.sleep(1.0)

    def check_stored(self, *, allow_unjournalled_ms: tuple[int, int] | None = None, timeout_s: float = 60.0) -> int:
        """Every sample an edge took (up to 2 s ago) is in InfluxDB exactly once; returns how many were compared.

        ``allow_unjournalled_ms``: a window (epoch ms) in which InfluxDB may hold samples the journal lacks (an
        edge killed between writing its outbox file and its journal)."""
        journal, stored = self.wait_all_stored(timeout_s)
        assert journal, "the edges took no sample"
        problems: list[str] = []
        for device, taken in sorted(journal.items()):
            have = stored.get(device, [])
            lost = sorted(set(taken) - set(have))
            twice = sorted(ts for ts in set(have) if have.count(ts) > 1)
            extra = sorted(set(have) - set(taken))
            if allow_unjournalled_ms is not None:
                lo, hi = allow_unjournalled_ms
                extra = [ts for ts in extra if not lo <= ts <= hi]
            if lost or twice or extra:
                problems.append(
                    f"{device}: {len(taken)} taken, {len(set(have))} stored, lost {lost[:5]} "
                    f"({len(lost)}), twice {twice[:5]}, not taken {extra[:5]} ({len(extra)})"
                )
        assert not problems, "\n".join(problems)
        return sum(len(set(ts)) for ts in journal.values())

    def check_sensor_readings_stored(self, since_ms: int, timeout_s: float = 60.0) -> int:
        """Every reading an MQTT sensor had acknowledged by the broker from ``since_ms`` (once the edges listen) up to
        2 s ago is in InfluxDB; how many."""
        cutoff = now_ms() - 2_000
        with self._readings_lock:
            sent = {d: {t for t in ts if since_ms <= t <= cutoff} for d, ts in self.sensor_readings.items()}
        deadline = time.monotonic() + timeout_s
        while True:
            stored = self.stored()
            lost = {d: sorted(ts - set(stored.get(d, []))) for d, ts in sent.items()}
            lost = {d: ts for d, ts in lost.items() if ts}
            if not lost or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        total = sum(len(ts) for ts in sent.values())
        assert total, "no sensor reading was acknowledged"
        if lost:
            journal = self.journal()
            taken = {d: [t for t in ts if t in set(journal.get(d, []))] for d, ts in lost.items()}
            raise AssertionError(
                f"{sum(map(len, lost.values()))} of {total} acknowledged sensor readings not stored: "
                f"{lost}; of them taken by the edge (journal): {taken}"
            )
        return total

    def sensor_accounts(self, since_ms: int, until_ms: int) -> tuple[int, int, int, dict[str, list[int]]]:
        """The MQTT sensors' readings made from ``since_ms`` to ``until_ms``: (made, acknowledged by the broker,
        dropped by a sensor for a newer one while its broker was away, and per device those neither acknowledged nor
        counted as dropped: vanished)."""
        with self._readings_lock:
            made = {d: {t for t in ts if since_ms <= t <= until_ms} for d, ts in self.sensor_made.items()}
            acked = {d: set(ts) for d, ts in self.sensor_readings.items()}
            dropped = {d: set(ts) for d, ts in self.sensor_dropped.items()}
        vanished = {d: sorted(ts - acked.get(d, set()) - dropped.get(d, set())) for d, ts in made.items()}
        n_acked = sum(len(ts & acked.get(d, set())) for d, ts in made.items())
        n_dropped = sum(len(ts & dropped.get(d, set())) for d, ts in made.items())
        return sum(map(len, made.values())), n_acked, n_dropped, {d: ts for d, ts in vanished.items() if ts}

    def alerts(self) -> list[Any]:
        store = AlertStore(self.store_url)
        try:
            return store.list_alerts(limit=1000)
        finally:
            store.close()

    def raises(self, alert_id: int) -> int:
        store = AlertStore(self.store_url)
        try:
            return sum(1 for h in store.history(alert_id) if h.action.value == "raise")
        finally:
            store.close()

    def close(self) -> None:
        for child in (*self.edges.values(), self.bridge, self.rules):
            child.stop()
        self.thread.stop()
        if self.influx.proc is not None:
            self.thaw_influx()  # a test that froze it and failed
        self.influx.stop()
        self.broker.remove()
        if self.site_broker is not None:
            self.site_broker.remove()


def now_ms() -> int:
    return int(time.time() * 1000)
