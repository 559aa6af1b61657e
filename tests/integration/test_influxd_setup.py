"""Setting up an InfluxDB with auth (the runner ``lifeline up`` and the fixtures use): a statement is done when its
answer has been read to the end, and failed when the answer's body says so.

InfluxDB 1.x sends 200 as soon as it accepts a query, before the statement runs, and reports a failed statement in
the body, still with 200. Taken on its status alone, a CREATE USER let the next statement, sent at once, find no admin
yet on a busy machine (CREATE DATABASE answered 403: "create admin user first"), and a CREATE USER that failed passed
for done."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from lifeline.runners import ServiceError
from testing import Influxd

pytestmark = pytest.mark.integration

ADMIN = ("admin", "adm.in-Secret-1")


def test_each_user_exists_once_set_up_returns(tmp_path: Path) -> None:
    users = {f"user-{i}": (f"pass-{i}-Secret", "READ") for i in range(20)}
    with Influxd(tmp_path / "influx", auth_enabled=True) as server:
        server.set_up_users("lifeline", users, ADMIN)
        for name, (password, _) in users.items():
            resp = httpx.post(f"{server.url}/query", data={"q": "SHOW DATABASES"}, auth=(name, password), timeout=10)
            assert resp.status_code == 200, (name, resp.text)


def test_a_statement_that_failed_with_200_is_an_error(tmp_path: Path) -> None:
    with Influxd(tmp_path / "influx", auth_enabled=True) as server:
        shutil.rmtree(server.data_dir / "meta")  # the admin cannot be saved: InfluxDB answers 200 with the error
        with pytest.raises(ServiceError, match=r"could not create the admin user.*no such file or directory"):
            server.set_up_users("lifeline", {}, ADMIN)
