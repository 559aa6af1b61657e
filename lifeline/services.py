"""Start and stop the real servers the platform runs on (Mosquitto now, InfluxDB later) as child processes.

Used by ``lifeline up``, the benchmarks and the test fixtures alike: loopback, a free port, data in a folder.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


class ServiceError(RuntimeError):
    """A server could not be started; the text says which and why (with the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """True once ``host:port`` accepts a connection; False after ``timeout_s`` or if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


def find_binary(name: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin")) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    raise ServiceError(f"{name} is not installed: run scripts/setup (it installs the Debian package)")


class Mosquitto:
    """A Mosquitto broker on loopback with its config, persistence and log in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "mosquitto.log"
        self.conf_path = data_dir / "mosquitto.conf"

    def _write_conf(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.data_dir}/",
                    "autosave_interval 1",
                    "max_queued_messages 1000000",
                    "max_inflight_messages 1000",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and return once it accepts connections."""
        self._write_conf()
        binary = find_binary("mosquitto")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf_path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        if not wait_for_port(self.host, self.port, timeout_s, self.proc):
            self.stop()
            raise ServiceError(f"mosquitto did not start on {self.host}:{self.port}: {self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM, so it saves its persistence file); kill it if it does not go."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
