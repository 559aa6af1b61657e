"""Schemathesis over the API's OpenAPI spec: generated requests (valid and invalid) to every operation, as the
admin, with a real Mosquitto and InfluxDB behind; nothing may answer 5xx. Bounded: a few examples an operation."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Result
from schemathesis.schemas import APIOperation

from alerts.store import AlertStore
from api import ApiService, create_app
from testing import Influxd, Mosquitto
from tests.helpers import wait_until
from tests.integration.test_api_support import PASSWORD, add_users, fill_alerts, make_config

pytestmark = pytest.mark.integration

EXAMPLES = 12  # per operation and generation mode
SKIP = {
    ("GET", "/api/stream"),  # an endless response; tested in test_api_readings
    ("POST", "/api/auth/logout"),  # would end the session the test runs with
}


def _operation(result: Result[APIOperation[Any, Any, Any, Any], InvalidSchema]) -> APIOperation[Any, Any, Any, Any]:
    """The operation, or the schema's error raised (an operation the generator cannot read is a failure)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


@pytest.fixture(scope="module")
def service(
    shared_mosquitto: Mosquitto, shared_influxdb: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> ApiService:
    shared_influxdb.create_database("api_schema")
    config = make_config(
        tmp_path_factory.mktemp("api-schema"),
        mqtt=shared_mosquitto,
        influx_url=shared_influxdb.url,
        database="api_schema",
        # generated password changes with wrong old passwords must not block the user and end the session (issue 24)
        auth={
            "argon2_time_cost": 1,
            "argon2_memory_kib": 64,
            "login_throttle": {"pair_max_failures": 1000, "address_max_failures": 100_000},
        },
    )
    svc = ApiService(config)
    add_users(svc)
    fill_alerts(svc.store)
    return svc


def test_no_5xx_for_any_generated_request(service: ApiService) -> None:
    # schemathesis' client runs the app's lifespan on every call: its app leaves the service alone, and this
    # test's client (the first app) starts and stops it once.
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(service, manage=False))
    with TestClient(create_app(service)) as client:  # the service connects to the broker
        wait_until(service.link.connected.is_set, what="the API connected to the broker")
        token = client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        failures: list[str] = []
        statuses: Counter[int] = Counter()
        operations = [_operation(r) for r in schema.get_all_operations()]
        assert len(operations) >= 30
        started = time.monotonic()
        for op in operations:
            if (op.method.upper(), op.path) in SKIP:
                continue
            strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def call(case: schemathesis.Case[APIOperation[Any, Any, Any, Any]]) -> None:
                response = case.call(headers=headers)
                statuses[response.status_code] += 1
                if response.status_code >= 500 and not (case.path == "/healthz" and response.status_code == 503):
                    failures.append(
                        f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                        f"{response.status_code} {response.text[:300]}"
                    )

            call()
        assert not failures, "\n".join(failures[:20])
        print(f"schemathesis: {sum(statuses.values())} requests, by status {dict(sorted(statuses.items()))}")
        assert sum(statuses.values()) >= 10 * len(operations)
        assert statuses[200] + statuses[201] + statuses[204] > 0
        assert statuses[422] > 0
        assert time.monotonic() - started < 100
        assert client.get("/api/auth/me", headers=headers).status_code == 200  # the session survived
    assert isinstance(service.store, AlertStore)
