"""The product's server runners (:mod:`lifeline.runners`) as tests and benchmarks use them.

On top of starting and stopping: a server killed as a crash would, and restarted on the same ports; a check that
the server started is the one holding its port (parallel tests pick free ports at the same time, and another test's
server may take ours between the pick and the bind: then ours picks again); and on Mosquitto, accounts made while
it runs (``control=True``, :meth:`Mosquitto.add`) with the client settings to use them (:meth:`Mosquitto.config_for`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.mqtt import BrokerConfig, TlsConfig
from infra.secret import Secret, write_secret_file
from lifeline import runners
from lifeline.broker_auth import Account, control_commands
from lifeline.runners import ServiceError, free_port
from lifeline.tls import TlsFiles
from testing._dynsec import ControlClient
from testing.accounts import control_account

log = logging.getLogger("testing.servers")


def owns_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the listening TCP socket on ``port`` (read from /proc; True where /proc cannot
    tell). A free port picked by one test may be taken by another's server before ours binds it: then that server
    answers, and ours must not take it for its own."""
    inodes: set[str] = set()
    want = f":{port:04X}"
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table) as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":  # local address, state LISTEN
                        inodes.add(cols[9])
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").removesuffix("]") in inodes:
                return True
    return False


class ChildServer(runners.ChildServer):
    """A product runner with what tests need: ``kill``, ``restart`` and ports of its own.

    Ready means ready *and* holding its port. At the first start on ports chosen here (no port given), a port another
    process took before the server bound it means new ports and another try (up to three); a restart keeps its ports,
    since its clients know them. A subclass whose ``__init__`` is given a port sets ``ports_chosen_here``.
    """

    ports_chosen_here = True

    def _ready(self) -> bool:
        return super()._ready() and self.proc is not None and owns_port(self.proc.pid, self.port)

    def _choose_ports(self) -> None:
        self.port = free_port(self.host)

    def start(self, timeout_s: float = 30.0) -> None:
        for attempt in range(3):
            try:
                super().start(timeout_s)
            except ServiceError as exc:
                if not self.ports_chosen_here or attempt == 2:
                    raise
                self._choose_ports()
                log.info("%s: did not start (port taken?), trying port %d: %s", self.name, self.port, exc)
            else:
                self.ports_chosen_here = False
                return

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


class Mosquitto(ChildServer, runners.Mosquitto):
    """The product's closed Mosquitto, for tests and benchmarks.

    ``control=True`` adds an account that creates accounts at run time (:meth:`add`); :meth:`config_for` gives the
    client settings of an account; :meth:`remove` stops the broker and deletes a state folder made outside
    ``data_dir`` (as root it may be under the system temporary folder).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        accounts: Sequence[Account] = (),
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
        control: bool = False,
    ) -> None:
        self._control = control_account("lifeline-test-control") if control else None
        extra = [self._control] if self._control is not None else []
        super().__init__(
            data_dir, port, host, accounts=[*accounts, *extra], tls=tls, require_certificate=require_certificate
        )
        self.ports_chosen_here = port is None
        self._control_client: ControlClient | None = None

    def stop(self, timeout_s: float = 10.0) -> None:
        self._close_control()
        super().stop(timeout_s)

    def kill(self) -> None:
        self._close_control()
        super().kill()

    def remove(self) -> None:
        """Stop and delete a state folder made outside ``data_dir``."""
        self.stop()
        if self._own_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def config_for(self, account: Account | str, **overrides: Any) -> BrokerConfig:
        """The BrokerConfig a client of ``account`` connects with (host, port, credentials, TLS)."""
        a = self.accounts[account] if isinstance(account, str) else account
        tls = TlsConfig(ca_file=self.tls.ca_file) if self.tls is not None else None
        # the password in a 0600 file, as in production: a config a test writes for a child process names the file
        # (an inline secret is dumped as ***)
        path = self.data_dir / "credentials" / f"{a.username}.password"
        write_secret_file(path, a.password + "\n")
        return BrokerConfig(
            host=self.host,
            port=self.port,
            username=a.username,
            password=Secret(file=path.resolve()),
            tls=tls,
            **overrides,
        )

    def add(self, account: Account, **overrides: Any) -> BrokerConfig:
        """Create ``account`` on the running broker (once; the same user name gives the same account back)."""
        known = self.accounts.get(account.username)
        if known is None:
            self._control_request(control_commands(account))
            self.accounts[account.username] = known = account
        return self.config_for(known, **overrides)

    def _control_request(self, request: dict[str, object], timeout_s: float = 10.0) -> None:
        if self._control is None:
            raise ServiceError("this broker was started without control=True: accounts are fixed")
        if self._control_client is None:
            self._control_client = ControlClient(self.config_for(self._control))
        self._control_client.request(request, timeout_s)

    def _close_control(self) -> None:
        client, self._control_client = self._control_client, None
        if client is not None:
            client.close()


class Influxd(ChildServer, runners.Influxd):
    """The product's InfluxDB 1.x runner, for tests and benchmarks (kill, restart, ports of its own)."""

    def __init__(
        self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1", *, auth_enabled: bool = False
    ) -> None:
        super().__init__(data_dir, port, host, auth_enabled=auth_enabled)
        self.ports_chosen_here = port is None

    def _choose_ports(self) -> None:
        super()._choose_ports()
        self.rpc_port = free_port(self.host)
