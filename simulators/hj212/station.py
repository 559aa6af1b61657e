"""A simulated HJ 212 station: a data logger that connects to the platform over TCP and pushes real-time data
(CN 2011) every ``rtd_interval_s``, minute data (2051) every ``minute_every_s`` and hourly data (2061) every
``hour_every_s`` (shortened for tests and demonstrations; real loggers: 30 s, 1 min or 10 min, 1 h).

With ``answer=True`` the Flag's A bit asks for an answer (9014 with the packet's QN); the station waits for it up
to ``timeout_s`` and sends the packet again, ``retries`` times (HJ 212-2017 §6.5, CN 1000's timeout and retry
count), and records how long each answer took. Faults on demand, applied to the next packet(s): ``bad_crc``,
``garbage`` (bytes before the packet), ``split_writes`` (the packet in three writes), ``byte_by_byte``,
``bad_password``, ``unknown_code`` (a value whose code no profile maps). A station reconnects after the server
closes its connection.

HJ 212-2025 (``version=2``, reported): ``sm4_key`` (16 bytes) encrypts the CP of data commands (SM4, see
``_wire.sm4_encrypt``); ``heartbeat_s`` sends the heartbeat (CN 9015, ST 91) that often; ``serial`` sends the
hardware serial (CN 1001, ``HardwareSN=``, the field name is an assumption) on every connection. An answer 9011 with
``QnRtn=2`` (request refused) ends the resending of the packet it answers (counted as ``refused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import time
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_profiles import Profile
from infra.clock import WallClock
from infra.secret import write_secret_file
from simulators.behaviours import Behaviour, FlueGasCems
from simulators.hj212 import _wire
from simulators.hj212.wastewater import WastewaterOutlet

log = logging.getLogger("lifeline.sim.hj212")

MAX_SEGMENT = 1024  # HJ 212-2017 §6.3.1: the data segment is 0-1024 bytes (shared standards/hj212.md, check)
_FLAG_D = 0x02  # §6.3.3 Flag bit 1: the message is split into PNUM packets
FAULTS = ("bad_crc", "garbage", "split_writes", "byte_by_byte", "bad_password", "unknown_code")
_BROKEN = frozenset({"bad_crc", "bad_password"})  # the server refuses these: no answer to wait for
CST = timedelta(hours=8)  # DataTime and QN are Beijing time (UTC+8)


def make_behaviour(profile: Profile, seed: int) -> Behaviour:
    if profile.kind == "cems":
        return FlueGasCems(seed)
    if profile.kind == "wastewater_outlet":
        return WastewaterOutlet(seed)
    raise ValueError(f"no HJ 212 station behaviour for profile {profile.name!r} (kind {profile.kind!r})")


def local_text(now: float, with_ms: bool = False) -> str:
    t = datetime.fromtimestamp(now, UTC) + CST
    return t.strftime("%Y%m%d%H%M%S") + (f"{t.microsecond // 1000:03d}" if with_ms else "")


class Hj212Station:
    def __init__(
        self,
        mn: str,
        password: str,
        profile: Profile,
        host: str,
        port: int,
        *,
        seed: int = 1,
        behaviour: Behaviour | None = None,
        rtd_interval_s: float = 30.0,
        minute_every_s: float | None = 60.0,
        hour_every_s: float | None = 3600.0,
        answer: bool = False,
        version: int = 1,
        legacy_codes: bool = False,
        sm4_key: bytes | None = None,
        heartbeat_s: float | None = None,
        serial: str | None = None,
        st: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        clock: WallClock = time.time,
    ) -> None:
        if profile.hj212 is None:
            raise ValueError(f"profile {profile.name!r} has no hj212 section")
        self.mn, self.password, self.profile = mn, password, profile
        self.host, self.port = host, port
        self.behaviour = behaviour or make_behaviour(profile, seed)
        self.rtd_interval_s = rtd_interval_s
        self.minute_every_s, self.hour_every_s = minute_every_s, hour_every_s
        self.answer, self.version, self.legacy_codes = answer, version, legacy_codes
        if sm4_key is not None and (len(sm4_key) != 16 or version != 2):
            raise ValueError("an SM4 key is 16 bytes, for a version 2 (HJ 212-2025) station")
        self.sm4_key, self.heartbeat_s, self.serial = sm4_key, heartbeat_s, serial
        self.timeout_s, self.retries = timeout_s, retries
        self.clock = clock
        self.st = st or profile.hj212.st or "32"
        self.faults: deque[str] = deque()
        self.counts: Counter[str] = Counter()  # sent, answered, unanswered, resent, connects, faults
        self.answer_ms: list[float] = []
        self.sent_log: deque[bytes] = deque(maxlen=1000)  # packets as written (faults applied), newest last
        self._waiting: dict[str, asyncio.Future[bool]] = {}  # QN -> True answered, False refused (9011)
        self._writer: asyncio.StreamWriter | None = None
        self._window: list[dict[str, float]] = []  # real-time values since the last minute packet
        self._hour: list[dict[str, float]] = []
        self._qn_last = ""

    # -- faults and figures ---------------------------------------------------------------------------------------
    def inject(self, fault: str, count: int = 1) -> None:
        """Apply ``fault`` to the next ``count`` packets."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        self.faults.extend([fault] * count)

    def p99_answer_ms(self) -> float | None:
        if len(self.answer_ms) < 2:
            return self.answer_ms[0] if self.answer_ms else None
        return statistics.quantiles(self.answer_ms, n=100)[98]

    # -- packets (pure but for the QN's clock) --------------------------------------------------------------------
    def _code(self, name: str) -> str:
        assert self.profile.hj212 is not None
        point = next(p for p in self.profile.hj212.points if p.name == name)
        return point.legacy_code if self.legacy_codes and point.legacy_code else point.code

    def _qn(self, now: float) -> str:
        qn = local_text(now, with_ms=True)
        while qn <= self._qn_last:  # unique per station, as HJ 212 requests must be
            qn = str(int(qn) + 1)
        self._qn_last = qn
        return qn

    def packet(
        self, cn: str, cp: str, now: float, *, flag_a: bool | None = None, pw: str | None = None, st: str | None = None
    ) -> bytes:
        a = self.answer if flag_a is None else flag_a
        if self.sm4_key is not None and _wire.encrypted_command(cn):
            cp = _wire.sm4_encrypt(self.sm4_key, cp)
        seg = _wire.segment(
            qn=self._qn(now),
            st=st or self.st,
            cn=cn,
            pw=pw or self.password,
            mn=self.mn,
            flag=(self.version << 2) | (1 if a else 0),
            cp=cp,
        )
        return _wire.frame(seg)

    def packets(self, cn: str, cp: str, now: float) -> list[bytes]:
        """``cp`` in one packet, or split into PNUM packets (Flag D, PNO 1..PNUM, one QN; HJ 212-2017 §6.3.3) at its
        groups when one would pass the data segment's 1,024 bytes (§6.3.1): a CEMS's minute and hourly data do."""
        whole = self.packet(cn, cp, now)
        if len(whole) - 12 <= MAX_SEGMENT:  # ## + 4-digit length + segment + CRC + CR LF
            return [whole]
        qn = self._qn(now)
        a = 1 if self.answer else 0
        flag = (self.version << 2) | _FLAG_D | a

        def seg(part: str, pnum: int, pno: int) -> bytes:
            body = _wire.sm4_encrypt(self.sm4_key, part) if self.sm4_key and _wire.encrypted_command(cn) else part
            return _wire.segment(
                qn=qn, st=self.st, cn=cn, pw=self.password, mn=self.mn, flag=flag, cp=body, pnum=pnum, pno=pno
            )

        parts: list[str] = []
        for group in cp.split(";"):  # greedily, with room for PNUM/PNO of up to 3 digits each
            joined = f"{parts[-1]};{group}" if parts else group
            if parts and len(seg(joined, 999, 999)) <= MAX_SEGMENT:
                parts[-1] = joined
            else:
                parts.append(group)
        return [_wire.frame(seg(part, len(parts), i)) for i, part in enumerate(parts, start=1)]

    def realtime_cp(self, values: dict[str, float], flag: str, now: float) -> str:
        groups = [f"DataTime={local_text(now)}"]
        groups += [f"{self._code(n)}-Rtd={_wire.number(v)},{self._code(n)}-Flag={flag}" for n, v in values.items()]
        return ";".join(groups)

    def period_cp(self, window: list[dict[str, float]], start: float, seconds: float, flag: str) -> str:
        assert self.profile.hj212 is not None
        groups = [f"DataTime={local_text(start)}"]
        flow_point = next((p for p in self.profile.hj212.points if p.total_unit == "m³"), None)
        flow_avg = statistics.fmean(w[flow_point.name] for w in window) if flow_point else 0.0
        for p in self.profile.hj212.points:
            series = [w[p.name] for w in window if p.name in w]
            if not series:
                continue
            code, avg = self._code(p.name), statistics.fmean(series)
            fields = [
                f"{code}-Min={_wire.number(min(series))}",
                f"{code}-Avg={_wire.number(avg)}",
                f"{code}-Max={_wire.number(max(series))}",
            ]
            if p.total_unit is not None and flow_point is not None:
                litres = flow_point.unit == "L/s"
                if p is flow_point:  # volume: m³/s × s, or L/s × s / 1000
                    total = avg * seconds / (1000 if litres else 1)
                else:  # mass in kg: mg/L × L/s × s, or mg/m³ × m³/s × s, / 1e6
                    total = avg * flow_avg * seconds / 1e6
                fields.append(f"{code}-Cou={_wire.number(total)}")
            groups.append(",".join([*fields, f"{code}-Flag={flag}"]))
        return ";".join(groups)

    def _values(self, now: float) -> tuple[dict[str, float], str]:
        assert self.profile.hj212 is not None
        raw = self.behaviour.step(now)
        names = {p.name for p in self.profile.hj212.points}
        values = {k: float(v) for k, v in raw.items() if k in names and not isinstance(v, bool | str)}
        return values, "C" if raw.get("maintenance") else "N"  # CEMS daily zero/span check: flag C

    # -- running --------------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Connect (again after a loss, every second) and send until ``stop`` is set."""
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            self.counts["connects"] += 1
            self._writer = writer
            listener = asyncio.ensure_future(self._listen(reader))
            try:
                await self._send_loop(stop)
            except (ConnectionError, OSError) as exc:
                log.info("station mn=%s connection lost reason=%r", self.mn, str(exc))
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                writer.close()
                self._writer = None

    async def _send_loop(self, stop: asyncio.Event) -> None:
        next_rtd = next_beat = self.clock()
        minute_start = hour_start = self.clock()
        if self.serial is not None:  # HJ 212-2025 CN 1001: the hardware serial, on every connection
            await self.send(self.packet("1001", f"HardwareSN={self.serial}", next_rtd, st="91"))
        while not stop.is_set():
            now = self.clock()
            if self.heartbeat_s and now >= next_beat:
                await self.send(self.packet("9015", "", now, flag_a=False, st="91"))
                self.counts["heartbeats"] += 1
                next_beat += self.heartbeat_s
            if now >= next_rtd:
                values, flag = self._values(now)
                self._window.append(values)
                self._hour.append(values)
                for part in self.packets("2011", self.realtime_cp(values, flag, now), now):
                    await self.send(part)
                next_rtd += self.rtd_interval_s
            if self.minute_every_s and now - minute_start >= self.minute_every_s and self._window:
                cp = self.period_cp(self._window, minute_start, now - minute_start, "N")
                for part in self.packets("2051", cp, now):
                    await self.send(part)
                self._window, minute_start = [], now
            if self.hour_every_s and now - hour_start >= self.hour_every_s and self._hour:
                for part in self.packets("2061", self.period_cp(self._hour, hour_start, now - hour_start, "N"), now):
                    await self.send(part)
                self._hour, hour_start = [], now
            wake = min(next_rtd, next_beat) if self.heartbeat_s else next_rtd
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(wake - self.clock(), 1.0)))

    async def send(self, packet: bytes) -> bool:
        """Write ``packet`` (with the next fault, if any); with the A bit, wait for its answer and resend; True if
        it was answered (or needs no answer)."""
        fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            self.counts[f"fault_{fault}"] += 1
            packet = _apply(packet, fault, self)
        self.sent_log.append(packet)
        wants = b";Flag=" in packet and int(packet.split(b";Flag=")[1].split(b";")[0]) & 1
        if not wants or fault in _BROKEN:
            await self._write(packet, fault)
            self.counts["sent"] += 1
            return not wants
        qn = packet.split(b"QN=")[1].split(b";")[0].decode()
        for attempt in range(self.retries + 1):
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._waiting[qn] = future
            started = time.perf_counter()
            await self._write(packet, fault if attempt == 0 else None)
            self.counts["sent" if attempt == 0 else "resent"] += 1
            try:
                answered = await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                continue
            finally:
                self._waiting.pop(qn, None)
            if not answered:  # 9011 QnRtn=2: the platform refuses it for good (e.g. no key for our CP)
                self.counts["refused"] += 1
                return False
            self.answer_ms.append((time.perf_counter() - started) * 1000)
            self.counts["answered"] += 1
            return True
        self.counts["unanswered"] += 1
        return False

    async def _write(self, packet: bytes, fault: str | None) -> None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected")
        if fault == "split_writes":
            third = max(1, len(packet) // 3)
            for chunk in (packet[:third], packet[third : 2 * third], packet[2 * third :]):
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.01)
        elif fault == "byte_by_byte":
            for i in range(len(packet)):
                writer.write(packet[i : i + 1])
                await writer.drain()
        else:
            writer.write(packet)
            await writer.drain()

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Answers from the platform: a 9014 (or 9013) with our QN resolves the send waiting for it; a 9011 with
        QnRtn=2 (refused) ends it unanswered."""
        buf = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                refused = b"CN=9011" in line and b"QnRtn=2" in line
                if (b"CN=9014" not in line and b"CN=9013" not in line and not refused) or b"QN=" not in line:
                    continue
                qn = line.split(b"QN=")[1].split(b";")[0].decode()
                future = self._waiting.get(qn)
                if future is not None and not future.done():
                    future.set_result(not refused)


def _apply(packet: bytes, fault: str, station: Hj212Station) -> bytes:
    if fault == "bad_crc":
        crc = packet[-6:-2]
        wrong = b"%04X" % (int(crc, 16) ^ 0x0101)
        return packet[:-6] + wrong + b"\r\n"
    if fault == "garbage":
        return b"\x00\xffnoise ## not a packet\r\n" + packet
    if fault == "bad_password":
        seg = packet[6:-6].replace(f"PW={station.password};".encode(), b"PW=999999;")
        return _wire.frame(seg)
    if fault == "unknown_code":
        seg = packet[6:-6].replace(b"&&", b"&&zz9999-Rtd=1.0,zz9999-Flag=N;", 1)
        return _wire.frame(seg)
    return packet  # split_writes, byte_by_byte: the bytes are right, the writes are not


class Hj212Fleet:
    """Stations of a district, run together; ``server_stations`` gives the ingest server's ``stations:`` entries."""

    def __init__(self, stations: list[tuple[str, str, Hj212Station]]) -> None:
        self.stations = stations  # (site, device, station)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(s.run(stop) for _, _, s in self.stations))

    def server_stations(self, key_files: dict[str, Path] | None = None) -> list[dict[str, object]]:
        """The ingest server's ``stations:`` entries; a version 2 station is ``version: 2025`` with its heartbeat,
        and its SM4 key from ``key_files`` (MN -> a 0600 file, see ``write_keys``)."""
        out: list[dict[str, object]] = []
        for site, device, s in self.stations:
            entry: dict[str, object] = {"mn": s.mn, "site": site, "device": device, "profile": s.profile.name}
            if s.version == 2:
                entry["version"] = 2025
                if s.heartbeat_s:
                    entry["heartbeat_s"] = s.heartbeat_s
            if s.sm4_key is not None:
                if key_files is None or s.mn not in key_files:
                    raise ValueError(f"station {s.mn} encrypts with SM4: give its key file (write_keys)")
                entry["sm4_key"] = {"file": str(key_files[s.mn])}
            out.append(entry)
        return out

    def passwords(self) -> dict[str, str]:
        """MN -> PW, for a passwords_file (write it with mode 0600)."""
        return {s.mn: s.password for _, _, s in self.stations}

    def write_keys(self, folder: Path) -> dict[str, Path]:
        """The SM4 key of each station that has one, as 32 hex digits in ``folder/<MN>.key`` (mode 0600)."""
        files: dict[str, Path] = {}
        for _, _, s in self.stations:
            if s.sm4_key is not None:
                files[s.mn] = folder / f"{s.mn}.key"
                write_secret_file(files[s.mn], s.sm4_key.hex().upper() + "\n")
        return files


def demo_fleet(
    host: str,
    port: int,
    profiles: dict[str, Profile],
    *,
    site: str = "hj212-demo",
    answer: bool = True,
    rtd_interval_s: float = 30.0,
    seed: int = 1,
    sm4: bool = False,
) -> Hj212Fleet:
    """One flue-gas CEMS and one wastewater outlet of ``site``, for a district (``lifeline up``): give the ingest
    server ``fleet.server_stations(fleet.write_keys(folder))`` and a 0600 passwords file of ``fleet.passwords()``,
    then ``fleet.run``. ``sm4``: the outlet speaks HJ 212-2025 (SM4-encrypted CP with a fresh key, heartbeat every
    60 s, its hardware serial on connecting); the CEMS stays HJ 212-2017."""
    cems = Hj212Station(
        "010000A8900016F000169DC0",
        "cems01",
        profiles["flue_gas_cems_hj212"],
        host,
        port,
        seed=seed,
        answer=answer,
        rtd_interval_s=rtd_interval_s,
    )
    outlet = Hj212Station(
        "010000A8900016F000169DC1",
        "outl01",
        profiles["wastewater_outlet_hj212"],
        host,
        port,
        seed=seed + 1,
        answer=answer,
        rtd_interval_s=rtd_interval_s,
        version=2 if sm4 else 1,
        sm4_key=os.urandom(16) if sm4 else None,
        heartbeat_s=60.0 if sm4 else None,
        serial="SN20260001" if sm4 else None,
    )
    return Hj212Fleet([(site, "cems-1", cems), (site, "outlet-1", outlet)])
