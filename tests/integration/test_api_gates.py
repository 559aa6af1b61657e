"""Gate control at the API against a real Mosquitto: select-before-operate, every interlock refusal, the Command on
the broker (signed with the site's control key), a test stand-in for the edge agent answering with CommandResults
signed with the site key, forged results that are not recorded, the time-out when nobody answers, and the audit
entries of every step. The API runs on a real uvicorn; its clock is the test's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api import ApiService, i18n
from api.gates import FORGED_RULE, HELD_BACK_RULE, GateService
from rules import AlertKey
from telemetry import encode, topics
from telemetry.commands import Action, Command, CommandResult, Interlock, ResultState
from telemetry.keys import SiteKeyFiles, create_site_keys, load_signing_key, load_verify_key
from telemetry.signing import SigningKey, VerifyKey, command_digest, sign, verify
from testing import Mosquitto
from tests.helpers import Publisher, Subscriber, wait_until
from tests.integration.test_api_support import Clock, RunningApi, add_users, gate_telemetry, login, make_config

pytestmark = pytest.mark.integration

SITE = "north-sluices"


@dataclass
class GateApi:
    api: RunningApi
    service: ApiService
    clock: Clock
    pub: Publisher
    broker: Mosquitto
    device: str
    edge_key: SigningKey  # the site key's private half, as the site's edge agent holds it
    control_key: VerifyKey  # the control key's public half, as the site's edge agent holds it

    def headers(self, user: str) -> dict[str, str]:
        return login(self.api.client, user)

    def telemetry(self, device: str | None = None, **values: Any) -> None:
        """Publish the gate's state now and wait until the API has it."""
        device = device or self.device
        ts = self.clock()
        self.pub.publish(*gate_telemetry(SITE, device, ts, **values))
        wait_until(
            lambda: (s := self.service.cache.get(SITE, device)) is not None and s.last_seen_ms == ts,
            what="gate telemetry in the API's cache",
        )

    def select(self, headers: dict[str, str], device: str | None = None) -> str:
        r = self.api.client.post(f"/api/gates/{SITE}/{device or self.device}/select", headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["selection"])

    def operate(self, headers: dict[str, str], device: str | None = None, **body: Any) -> Any:
        return self.api.client.post(f"/api/gates/{SITE}/{device or self.device}/commands", headers=headers, json=body)

    def audit(self, command_id: str) -> list[dict[str, Any]]:
        r = self.api.client.get(
            "/api/audit",
            headers=self.headers("boss"),
            params={"target_prefix": f"gate:{SITE}/{self.device}/cmd/{command_id}"},
        )
        assert r.status_code == 200, r.text
        return list(reversed(r.json()))


_counter = iter(range(1_000_000))


@pytest.fixture
def gates(shared_mosquitto: Mosquitto, tmp_path: Path) -> Iterator[GateApi]:
    clock = Clock()
    device = f"gate-{next(_counter):03d}-{id(tmp_path) % 10_000}"
    create_site_keys(tmp_path / "keys", [SITE])
    files = SiteKeyFiles.of(tmp_path / "keys", SITE)
    config = make_config(
        tmp_path,
        mqtt=shared_mosquitto,
        gates={
            "selection_s": 10,
            "default_ttl_s": 20,
            "edge_timeout_s": 5,
            "devices": [{"site": SITE, "device": device, "max_opening_m": 5.85, "max_head_open_m": 2.0}],  # 90 % of 6.5
        },
        site_keys={
            SITE: {"control_private_key": str(files.control_private), "site_public_key": str(files.site_public)}
        },
    )
    service = ApiService(config, clock=clock)
    add_users(service)
    api = RunningApi(service)
    wait_until(service.link.connected.is_set, what="the API connected to the broker")
    pub = Publisher(shared_mosquitto)
    yield GateApi(
        api,
        service,
        clock,
        pub,
        shared_mosquitto,
        device,
        load_signing_key(files.site_private),
        load_verify_key(files.control_public),
    )
    pub.close()
    api.stop()


def _refusal(r: Any, status: int, interlock: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["detail"]["interlock"] == interlock, r.text


# -- refusals: one row a case ----------------------------------------------------------------------------


def _role(g: GateApi) -> Any:
    g.telemetry()
    return g.api.client.post(f"/api/gates/{SITE}/{g.device}/select", headers=g.headers("viewer"))


def _role_command(g: GateApi) -> Any:
    g.telemetry()
    return g.operate(g.headers("env-north"), action="stop")


def _area(g: GateApi) -> Any:
    g.telemetry()
    return g.api.client.post(f"/api/gates/{SITE}/{g.device}/select", headers=g.headers("op-south"))


def _no_selection(g: GateApi) -> Any:
    g.telemetry()
    return g.operate(g.headers("op-north"), action="open")


def _selection_expired(g: GateApi) -> Any:
    h = g.headers("op-north")
    sel = g.select(h)
    g.clock.advance(10_001)
    g.telemetry()
    return g.operate(h, selection=sel, action="open")


def _selection_of_other_user(g: GateApi) -> Any:
    g.telemetry()
    sel = g.select(g.headers("boss"))
    return g.operate(g.headers("op-north"), selection=sel, action="open")


def _selection_used_twice(g: GateApi) -> Any:
    g.telemetry()
    h = g.headers("op-north")
    sel = g.select(h)
    first = g.operate(h, selection=sel, action="close")
    assert first.status_code == 201, first.text
    g.service.gates._finish(first.json()["id"], "completed", "completed", "test", {}, "test")
    return g.operate(h, selection=sel, action="open")


def _repeated_id(g: GateApi) -> Any:
    g.telemetry()
    h = g.headers("op-north")
    first = g.operate(h, selection=g.select(h), id="cmd-rep-1", action="set_opening", target_pct=40)
    assert first.status_code == 201, first.text
    return g.operate(h, selection=g.select(h), id="cmd-rep-1", action="set_opening", target_pct=60)


def _local_mode(g: GateApi) -> Any:
    g.telemetry(remote_mode=False)
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="open")


def _fault(g: GateApi) -> Any:
    g.telemetry(fault_code=1.0)
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="open")


def _estop(g: GateApi) -> Any:
    g.telemetry(estop=True)
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="close")


def _out_of_limits(g: GateApi) -> Any:
    g.telemetry()
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="set_opening", target_pct=95)


def _level_difference(g: GateApi) -> Any:
    g.telemetry(level_up=5.0, level_down=2.0)
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="open")


def _no_data(g: GateApi) -> Any:
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="open")


def _stale_data(g: GateApi) -> Any:
    g.telemetry()
    g.clock.advance(31_000)
    h = g.headers("op-north")
    return g.operate(h, selection=g.select(h), action="open")


def _busy(g: GateApi) -> Any:
    g.telemetry()
    h = g.headers("op-north")
    assert g.operate(h, selection=g.select(h), action="close").status_code == 201
    return g.operate(h, selection=g.select(h), action="open")


REFUSALS: list[tuple[Callable[[GateApi], Any], int, str, str]] = [  # case, status, interlock, code
    (_role, 403, "role", "interlock.role"),
    (_role_command, 403, "role", "interlock.role"),
    (_area, 403, "area", "interlock.area"),
    (_no_selection, 409, "selection", "interlock.selection.none"),
    (_selection_expired, 409, "selection", "interlock.selection.expired"),
    (_selection_of_other_user, 409, "selection", "interlock.selection.unknown"),
    (_selection_used_twice, 409, "selection", "interlock.selection.used"),
    (_repeated_id, 409, "repeated", "interlock.repeated"),
    (_local_mode, 409, "local_mode", "interlock.local_mode"),
    (_fault, 409, "gate_fault", "interlock.gate_fault.fault_code"),
    (_estop, 409, "gate_fault", "interlock.gate_fault.estop"),
    (_out_of_limits, 409, "out_of_limits", "interlock.out_of_limits.range"),
    (_level_difference, 409, "level_difference", "interlock.level_difference.opening"),
    (_no_data, 409, "no_data", "interlock.no_data.limits"),  # never heard: not even its profile
    (_stale_data, 409, "no_data", "interlock.no_data.old_telemetry"),
    (_busy, 409, "busy", "interlock.busy.running"),
]
ZH_ERRORS = json.loads((i18n.FOLDER / "zh-CN.json").read_text(encoding="utf-8"))["errors"]


@pytest.mark.parametrize(
    ("case", "status", "interlock", "code"), REFUSALS, ids=[c.__name__.strip("_") for c, *_ in REFUSALS]
)
def test_refusal(gates: GateApi, case: Callable[[GateApi], Any], status: int, interlock: str, code: str) -> None:
    r = case(gates)
    _refusal(r, status, interlock)
    detail = r.json()["detail"]
    assert (detail["code"], detail["message"]) == (code, detail["reason"])
    # the console fills the Chinese template with the refusal's params
    assert ZH_ERRORS[code].format(**detail["params"])
    rows = gates.api.client.get(
        "/api/audit", headers=gates.headers("boss"), params={"action": "gate.command.refused"}
    ).json()
    assert rows[0]["detail"]["interlock"] == interlock
    assert rows[0]["source"] == "127.0.0.1"
    metrics = gates.api.client.get("/metrics").text
    assert f'lifeline_api_command_refusals_total{{interlock="{interlock}"}} 1' in metrics


def test_the_limits_say_when_the_gates_data_is_too_old_to_command(gates: GateApi) -> None:
    gates.telemetry()
    r = gates.api.client.get(f"/api/gates/{SITE}/{gates.device}/limits", headers=gates.headers("op-north"))
    assert r.status_code == 200, r.text
    assert r.json()["max_state_age_ms"] == 30_000
    assert r.json()["last_sample_ms"] == gates.service.cache.get(SITE, gates.device).last_seen_ms  # type: ignore[union-attr]


# -- a command end to end ----------------------------------------------------------------------------------


class StandInEdge:
    """A test stand-in for the edge agent: sees Commands on the broker and answers with CommandResults."""

    def __init__(self, broker: Mosquitto, pub: Publisher, site: str, key: SigningKey) -> None:
        self.sub = Subscriber(broker, topics.command_filter(site))
        self.pub = pub
        self.key = key

    def command(self, command_id: str) -> Command:
        got = self.sub.wait_for(lambda ms: any(m.topic.endswith(f"/cmd/{command_id}") for m in ms))
        return Command.model_validate_json(next(m.payload for m in got if m.topic.endswith(f"/cmd/{command_id}")))

    def answer(self, cmd: Command, state: ResultState, **fields: Any) -> None:
        result = sign(
            CommandResult(
                id=cmd.id,
                site=cmd.site,
                device=cmd.device,
                state=state,
                ts=cmd.issued_ms + 1,
                cmd_sha256=command_digest(cmd),
                **fields,
            ),
            self.key,
        )
        self.pub.publish(topics.command_result(cmd.site, cmd.device, cmd.id), encode(result), retain=result.final)


def test_command_published_answered_and_completed(gates: GateApi) -> None:
    edge = StandInEdge(gates.broker, gates.pub, SITE, gates.edge_key)
    gates.telemetry(gate_opening=1.0)
    h = gates.headers("op-north")
    sel = gates.select(h)
    r = gates.operate(h, selection=sel, id="cmd-e2e-1", action="set_opening", target_pct=50, ttl_s=15)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "published"
    assert r.json()["before"]["gate_opening"] == 1.0

    cmd = edge.command("cmd-e2e-1")  # the Command as the edge sees it on the broker
    verify(cmd, gates.control_key)  # signed with the site's control key
    assert (cmd.site, cmd.device, cmd.action.value, cmd.target_pct) == (SITE, gates.device, "set_opening", 50)
    assert cmd.operator == "op-north"
    assert cmd.source == "127.0.0.1"
    assert cmd.expires_ms == cmd.issued_ms + 15_000
    assert cmd.issued_ms == gates.clock()

    before = {"gate_opening": 1.0, "remote_mode": True}
    edge.answer(cmd, ResultState.ACCEPTED, before=before, target_m=3.25)
    edge.answer(cmd, ResultState.PROGRESS, opening_m=2.0, target_m=3.25)
    edge.answer(cmd, ResultState.PROGRESS, opening_m=3.0, target_m=3.25)
    edge.answer(cmd, ResultState.COMPLETED, opening_m=3.25, before=before, after={"gate_opening": 3.25})

    def done() -> bool:
        return bool(gates.api.client.get("/api/commands/cmd-e2e-1", headers=h).json()["final"])

    wait_until(done, what="command completed")
    view = gates.api.client.get("/api/commands/cmd-e2e-1", headers=h).json()
    assert view["state"] == "completed"
    assert [s["state"] for s in view["steps"]] == ["accepted", "progress", "progress", "completed"]
    assert [s.get("opening_m") for s in view["steps"]] == [None, 2.0, 3.0, 3.25]
    assert view["after"] == {"gate_opening": 3.25}

    actions = [(a["action"], a["who"], a["source"]) for a in gates.audit("cmd-e2e-1")]
    assert actions == [
        ("gate.command", "op-north", "127.0.0.1"),
        ("gate.command.accepted", "op-north", "127.0.0.1"),
        ("gate.command.progress", "op-north", "127.0.0.1"),
        ("gate.command.progress", "op-north", "127.0.0.1"),
        ("gate.command.completed", "op-north", "127.0.0.1"),
    ]
    entries = gates.audit("cmd-e2e-1")
    assert entries[0]["detail"]["before"]["gate_opening"] == 1.0
    assert entries[-1]["detail"]["after"] == {"gate_opening": 3.25}
    assert entries[-1]["detail"]["before"] == before
    selects = gates.api.client.get("/api/audit", headers=gates.headers("boss"), params={"action": "gate.select"}).json()
    assert selects[0]["detail"]["selection"] == sel
    assert selects[0]["who"] == "op-north"
    assert 'lifeline_api_commands_total{result="completed"} 1' in gates.api.client.get("/metrics").text

    # A new command on the gate goes through once the last one is final.
    r = gates.operate(h, selection=gates.select(h), action="close")
    assert r.status_code == 201, r.text
    edge.sub.close()


def test_repeat_with_same_body_is_the_same_command(gates: GateApi) -> None:
    sub = Subscriber(gates.broker, topics.command_filter(SITE, gates.device))
    gates.telemetry()
    h = gates.headers("op-north")
    first = gates.operate(h, selection=gates.select(h), id="cmd-idem-1", action="close", ttl_s=10)
    again = gates.operate(h, selection="sel-whatever", id="cmd-idem-1", action="close", ttl_s=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == "cmd-idem-1"
    assert again.json()["issued_ms"] == first.json()["issued_ms"]
    sub.wait_for(lambda ms: len(ms) >= 1)
    gates.pub.publish(*gate_telemetry(SITE, gates.device, gates.clock()))  # something after, to see no second cmd
    wait_until(lambda: gates.service.link.received > 0)
    assert len([m for m in sub.snapshot() if m.topic.endswith("/cmd/cmd-idem-1")]) == 1
    sub.close()


def test_no_answer_times_out(gates: GateApi) -> None:
    gates.telemetry()
    h = gates.headers("op-north")
    r = gates.operate(h, selection=gates.select(h), id="cmd-silent-1", action="open", ttl_s=10)
    assert r.status_code == 201, r.text
    assert r.json()["deadline_ms"] == r.json()["expires_ms"] + 5000
    receipt(gates, "cmd-silent-1")  # delivered (else it would end not_delivered after 5 s), then silence
    gates.clock.advance(14_000)  # expired, but the edge's time-out has not passed yet
    assert gates.service.gates.sweep() == []
    gates.clock.advance(1_000)

    def timed_out() -> bool:
        state: str = gates.api.client.get("/api/commands/cmd-silent-1", headers=h).json()["state"]
        return state == "timed_out"

    wait_until(timed_out, what="timed_out by the API's sweeper")
    assert [a["action"] for a in gates.audit("cmd-silent-1")] == [
        "gate.command",
        "gate.command.received",
        "gate.command.timed_out",
    ]
    # A late answer is recorded but does not change the outcome.
    view = gates.service.gates.get("cmd-silent-1")
    assert view is not None
    sent = Command(
        id=view.id,
        site=SITE,
        device=gates.device,
        action=Action.OPEN,
        issued_ms=view.issued_ms,
        expires_ms=view.expires_ms,
        operator="op-north",
        source="127.0.0.1",
    )
    pub_result = sign(
        CommandResult(
            id="cmd-silent-1",
            site=SITE,
            device=gates.device,
            state=ResultState.COMPLETED,
            ts=gates.clock(),
            cmd_sha256=command_digest(sent),
        ),
        gates.edge_key,
    )
    gates.pub.publish(topics.command_result(SITE, gates.device, "cmd-silent-1"), encode(pub_result))
    wait_until(lambda: len(gates.service.gates.get("cmd-silent-1").steps) == 2)  # type: ignore[union-attr]
    view = gates.api.client.get("/api/commands/cmd-silent-1", headers=h).json()
    assert view["state"] == "timed_out"
    assert view["steps"][1]["late"] is True


def sent_command(gates: GateApi, command_id: str) -> Command:
    """The command as the API recorded and signed it (without its signature)."""
    view = gates.service.gates.get(command_id)
    assert view is not None
    return Command(
        id=view.id,
        site=view.site,
        device=view.device,
        action=Action(view.action),
        target_pct=view.target_pct,
        point=view.point,
        value=view.value,
        cancels=view.cancels,
        issued_ms=view.issued_ms,
        expires_ms=view.expires_ms,
        operator=view.operator,
        source=view.source,
    )


def receipt(gates: GateApi, command_id: str) -> None:
    """Answer ``received`` as the edge does, and wait until the API has it."""
    cmd = sent_command(gates, command_id)
    result = CommandResult(
        id=cmd.id,
        site=cmd.site,
        device=cmd.device,
        state=ResultState.RECEIVED,
        ts=gates.clock(),
        cmd_sha256=command_digest(cmd),
    )
    gates.pub.publish(topics.command_result(cmd.site, cmd.device, cmd.id), encode(sign(result, gates.edge_key)))
    wait_until(lambda: gates.service.gates.get(command_id).state == "received")  # type: ignore[union-attr]


def test_stop_needs_no_selection_and_is_never_busy(gates: GateApi) -> None:
    gates.telemetry(remote_mode=False)
    h = gates.headers("op-north")
    first = gates.operate(h, action="stop")
    second = gates.operate(h, action="stop")
    assert (first.status_code, second.status_code) == (201, 201), second.text


def test_broker_down_is_503_and_recorded(gates: GateApi, tmp_path: Path) -> None:
    gates.telemetry()
    h = gates.headers("op-north")
    sel = gates.select(h)
    gates.service.link.connected.clear()  # as the link does when the connection drops
    r = gates.operate(h, selection=sel, id="cmd-nobroker", action="open")
    assert r.status_code == 503, r.text
    assert r.json()["state"] == "failed"
    assert "broker" in r.json()["reason"]
    gates.service.link.connected.set()


def test_command_of_other_area_is_hidden(gates: GateApi) -> None:
    gates.telemetry()
    h = gates.headers("op-north")
    assert gates.operate(h, selection=gates.select(h), id="cmd-hidden", action="open").status_code == 201
    assert gates.api.client.get("/api/commands/cmd-hidden", headers=gates.headers("op-south")).status_code == 404
    listed = gates.api.client.get("/api/commands", headers=gates.headers("op-south")).json()
    assert all(c["id"] != "cmd-hidden" for c in listed)
    assert gates.api.client.get("/api/commands/cmd-hidden", headers=gates.headers("viewer")).status_code == 200
    assert orjson.loads(gates.api.client.get("/api/commands", headers=h).content)[0]["id"] == "cmd-hidden"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"action": "stop", "target_pct": 1e300}, "stop takes no target_pct", id="stop-with-target"),
        pytest.param({"action": "open", "target_pct": 40}, "open takes no target_pct", id="open-with-target"),
        pytest.param({"action": "set_opening"}, "set_opening needs target_pct", id="set-opening-without-target"),
    ],
)
def test_a_target_only_where_it_belongs_is_422_naming_it(gates: GateApi, body: dict[str, Any], message: str) -> None:
    r = gates.operate(gates.headers("op-north"), **body)
    assert r.status_code == 422, r.text
    assert "target_pct" in r.text
    assert message in r.text


@pytest.mark.parametrize("action", ["write", "cancel"])
def test_a_set_point_or_cancel_is_no_gate_command_and_is_422(gates: GateApi, action: str) -> None:
    r = gates.operate(gates.headers("op-north"), action=action)
    assert r.status_code == 422, r.text
    assert "is not a gate action" in r.text


# -- signatures (decision record 009) ---------------------------------------------------------------------------


def _unsigned(g: GateApi, result: CommandResult) -> CommandResult:
    return result


def _wrong_key(g: GateApi, result: CommandResult) -> CommandResult:
    return sign(result, SigningKey.of(Ed25519PrivateKey.generate()))


def _changed_after_signing(g: GateApi, result: CommandResult) -> CommandResult:
    signed = sign(result.model_copy(update={"state": ResultState.FAILED}), g.edge_key)
    return signed.model_copy(update={"state": ResultState.COMPLETED})


def _answers_another_command(g: GateApi, result: CommandResult) -> CommandResult:  # a genuine edge answer, but to
    return sign(result.model_copy(update={"cmd_sha256": "ab" * 32}), g.edge_key)  # a forged command under this id


FORGED: list[tuple[Callable[[GateApi, CommandResult], CommandResult], str, str]] = [
    (_unsigned, "gate.result.bad_signature", "not signed"),
    (_wrong_key, "gate.result.bad_signature", "not with the expected key"),
    (_changed_after_signing, "gate.result.bad_signature", "does not verify"),
    (_answers_another_command, "gate.result.other_command", "answers another command"),
]


@pytest.mark.parametrize(("forge", "action", "words"), FORGED, ids=[f.__name__.strip("_") for f, *_ in FORGED])
def test_a_forged_result_is_not_recorded_but_audited_and_counted(
    gates: GateApi, forge: Callable[[GateApi, CommandResult], CommandResult], action: str, words: str
) -> None:
    gates.telemetry()
    h = gates.headers("op-north")
    r = gates.operate(h, selection=gates.select(h), id="cmd-forged-1", action="open")
    assert r.status_code == 201, r.text
    view = gates.service.gates.get("cmd-forged-1")
    assert view is not None
    sent = Command(
        id=view.id,
        site=SITE,
        device=gates.device,
        action=Action.OPEN,
        issued_ms=view.issued_ms,
        expires_ms=view.expires_ms,
        operator="op-north",
        source="127.0.0.1",
    )
    completed = CommandResult(
        id=view.id,
        site=SITE,
        device=gates.device,
        state=ResultState.COMPLETED,
        ts=gates.clock(),
        cmd_sha256=command_digest(sent),
        after={"gate_opening": 6.0},
    )
    topic = topics.command_result(SITE, gates.device, view.id)
    gates.pub.publish(topic, encode(forge(gates, completed)))

    def audited() -> list[dict[str, Any]]:
        return [a for a in gates.audit("cmd-forged-1") if a["action"] == action]

    wait_until(audited, what=f"an audit row {action}")
    (row,) = audited()
    assert row["detail"]["topic"] == topic
    assert words in row["detail"]["reason"]
    view = gates.service.gates.get("cmd-forged-1")
    assert view is not None
    assert (view.state, view.final, view.steps, view.after) == ("published", False, [], {})  # nothing recorded
    assert [a["action"] for a in gates.audit("cmd-forged-1")] == ["gate.command", action]
    reason = action.removeprefix("gate.result.").replace("bad_signature", "signature")
    metric = f'lifeline_api_command_results_refused_total{{reason="{reason}"}} '
    (line,) = [x for x in gates.api.client.get("/metrics").text.splitlines() if x.startswith(metric)]
    assert float(line.removeprefix(metric)) >= 1  # the shared broker may hold retained results of earlier tests' keys
    # the genuine answer still goes through
    gates.pub.publish(topic, encode(sign(completed, gates.edge_key)))
    wait_until(
        lambda: (v := gates.service.gates.get("cmd-forged-1")) is not None and v.state == "completed",
        what="the signed result recorded",
    )


def test_a_site_without_keys_gets_no_command(gates: GateApi) -> None:
    sub = Subscriber(gates.broker, topics.command_filter("south-sluices"))
    r = gates.api.client.post(
        f"/api/gates/south-sluices/{gates.device}/commands", headers=gates.headers("op-south"), json={"action": "stop"}
    )
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["interlock"] == "signature"
    assert "no control key" in r.json()["detail"]["reason"]
    gates.pub.publish(*gate_telemetry(SITE, gates.device, gates.clock()))  # something after, to see no command
    wait_until(lambda: gates.service.link.received > 0)
    assert sub.snapshot() == []
    sub.close()


# -- delivery: receipt, not delivered, cancel; forged commands and results once ------------------------------------
def test_a_command_without_receipt_is_not_delivered_and_a_signed_cancel_follows(gates: GateApi) -> None:
    edge = StandInEdge(gates.broker, gates.pub, SITE, gates.edge_key)
    gates.telemetry()
    h = gates.headers("op-north")
    r = gates.operate(h, selection=gates.select(h), id="cmd-lost-1", action="open", ttl_s=20)
    assert r.status_code == 201, r.text
    gates.clock.advance(4_000)
    assert gates.service.gates.sweep() == []  # within gates.receipt_timeout_s (5 s)
    gates.clock.advance(1_000)
    wait_until(lambda: gates.service.gates.get("cmd-lost-1").state == "not_delivered")  # type: ignore[union-attr]
    view = gates.api.client.get("/api/commands/cmd-lost-1", headers=h).json()
    assert (view["state"], view["final"]) == ("not_delivered", True)
    assert "did not confirm receipt within 5 s" in view["reason"]
    got = edge.sub.wait_for(lambda ms: any(Command.model_validate_json(m.payload).action is Action.CANCEL for m in ms))
    (cancel,) = [c for c in (Command.model_validate_json(m.payload) for m in got) if c.action is Action.CANCEL]
    verify(cancel, gates.control_key)
    assert (cancel.cancels, cancel.device, cancel.operator) == ("cmd-lost-1", gates.device, "op-north")
    assert [a["action"] for a in gates.audit("cmd-lost-1")] == ["gate.command", "gate.command.not_delivered"]
    # the gate is free again: the cancel itself does not hold it busy
    r = gates.operate(h, selection=gates.select(h), action="close")
    assert r.status_code == 201, r.text
    edge.sub.close()


def test_a_receipt_after_not_delivered_shows_what_the_edge_does(gates: GateApi) -> None:
    edge = StandInEdge(gates.broker, gates.pub, SITE, gates.edge_key)
    gates.telemetry()
    h = gates.headers("op-north")
    gates.operate(h, selection=gates.select(h), id="cmd-slow-1", action="open", ttl_s=20)
    gates.clock.advance(5_000)
    wait_until(lambda: gates.service.gates.get("cmd-slow-1").state == "not_delivered")  # type: ignore[union-attr]
    cmd = edge.command("cmd-slow-1")
    edge.answer(cmd, ResultState.RECEIVED)  # delivered after all, before the cancel: the edge runs it
    edge.answer(cmd, ResultState.ACCEPTED)
    wait_until(lambda: gates.service.gates.get("cmd-slow-1").state == "accepted")  # type: ignore[union-attr]
    view = gates.service.gates.get("cmd-slow-1")
    assert view is not None
    assert not view.final
    assert (view.steps[0]["state"], view.steps[0].get("late")) == ("received", True)  # came after "not delivered"
    edge.sub.close()


def _edge_refusal(g: GateApi, command_id: str, interlock: Interlock) -> CommandResult:
    """The edge's signed rejection of a command the API never sent (a forged one under a new id)."""
    return sign(
        CommandResult(
            id=command_id,
            site=SITE,
            device=g.device,
            state=ResultState.REJECTED,
            ts=g.clock(),
            interlock=interlock,
            reason="the command is signed with key 00, not with the expected key",
            cmd_sha256="cd" * 32,
        ),
        g.edge_key,
    )


def test_a_forged_command_refused_at_the_edge_is_audited_and_alerted_once_also_after_a_restart(
    gates: GateApi,
) -> None:
    gates.telemetry()  # a device the API knows: the alert is that device's
    refusal = _edge_refusal(gates, "forged-new-1", Interlock.SIGNATURE)
    topic = topics.command_result(SITE, gates.device, "forged-new-1")
    for _ in range(3):  # redelivered, or handed again on every reconnect
        gates.pub.publish(topic, encode(refusal))
    key = AlertKey(FORGED_RULE, SITE, gates.device)

    def alert() -> Any:
        with gates.service.store.begin() as tx:
            return tx.get(key)

    wait_until(lambda: alert() is not None, what="the forged-command alert")
    wait_until(lambda: gates.service.link.received >= 3, what="the three deliveries handled")
    rows = gates.audit("forged-new-1")
    assert [a["action"] for a in rows] == ["command.forged"]
    assert rows[0]["detail"]["interlock"] == "signature"
    assert "which the API did not send" in rows[0]["detail"]["reason"]
    stored = alert()
    assert (stored.alert.count, stored.alert.value, stored.alert.severity.value) == (1, "forged-new-1", "critical")
    # an API started afresh (no memory but the database) still knows it audited this one
    again = GateService(
        gates.service.config,
        gates.service.engine,
        gates.service.cache,
        lambda _t, _p: None,
        gates.service.audit,
        lambda _e: None,
        gates.clock,
        gates.service.gates.keys,
        audited=gates.service.gates.audited,
        alert=gates.service.gates.alert,
    )
    again.on_result(refusal, topic)
    assert [a["action"] for a in gates.audit("forged-new-1")] == ["command.forged"]
    assert alert().alert.count == 1
    # another forged command is another entry, and raises the alert again
    gates.pub.publish(
        topics.command_result(SITE, gates.device, "forged-new-2"),
        encode(_edge_refusal(gates, "forged-new-2", Interlock.WRONG_SITE)),
    )
    wait_until(lambda: alert().alert.count == 2, what="the alert raised again")
    # a device the API does not know (an invented name) makes no alert row of its own: the site's agent has it
    invented = _edge_refusal(gates, "forged-new-3", Interlock.SIGNATURE).model_copy(update={"device": "no-such-dev"})
    gates.pub.publish(
        topics.command_result(SITE, "no-such-dev", "forged-new-3"), encode(sign(invented, gates.edge_key))
    )

    def agent_alert() -> Any:
        with gates.service.store.begin() as tx:
            return tx.get(AlertKey(FORGED_RULE, SITE, "agent"))

    wait_until(lambda: agent_alert() is not None, what="the forged-command alert of the site's agent")
    with gates.service.store.begin() as tx:
        assert tx.get(AlertKey(FORGED_RULE, SITE, "no-such-dev")) is None
    assert 'lifeline_api_command_results_refused_total{reason="forged"}' in gates.api.client.get("/metrics").text


def test_a_retained_final_result_handed_again_is_recorded_and_audited_once(gates: GateApi) -> None:
    edge = StandInEdge(gates.broker, gates.pub, SITE, gates.edge_key)
    gates.telemetry()
    h = gates.headers("op-north")
    gates.operate(h, selection=gates.select(h), id="cmd-once-1", action="close")
    cmd = edge.command("cmd-once-1")
    edge.answer(cmd, ResultState.RECEIVED)
    edge.answer(cmd, ResultState.ACCEPTED)
    edge.answer(cmd, ResultState.COMPLETED, after={"gate_opening": 0.0})
    wait_until(lambda: gates.service.gates.get("cmd-once-1").final)  # type: ignore[union-attr]
    received = gates.service.link.received
    for _ in range(3):  # as every reconnect hands the retained final result again
        edge.answer(cmd, ResultState.COMPLETED, after={"gate_opening": 0.0})
    edge.answer(cmd, ResultState.COMPLETED, after={"gate_opening": 0.0}, repeat=True)  # a redelivery's repeat
    wait_until(lambda: gates.service.link.received >= received + 4, what="the four handed again")
    view = gates.service.gates.get("cmd-once-1")
    assert view is not None
    assert [s["state"] for s in view.steps] == ["received", "accepted", "completed"]
    actions = [a["action"] for a in gates.audit("cmd-once-1")]
    assert actions.count("gate.command.completed") == 1, actions
    assert gates.service.gates.duplicates >= 4
    metric = "lifeline_api_command_results_duplicate_total "
    (line,) = [x for x in gates.api.client.get("/metrics").text.splitlines() if x.startswith(metric)]
    assert float(line.removeprefix(metric)) >= 4
    edge.sub.close()


def test_a_command_refused_as_delivered_too_late_raises_the_held_back_alert(gates: GateApi) -> None:
    edge = StandInEdge(gates.broker, gates.pub, SITE, gates.edge_key)
    gates.telemetry()
    h = gates.headers("op-north")
    gates.operate(h, selection=gates.select(h), id="cmd-held-1", action="open")
    cmd = edge.command("cmd-held-1")
    edge.answer(cmd, ResultState.RECEIVED)
    reason = "first seen 20.0 s after it was issued, later than the delivery window of 5 s"
    edge.answer(cmd, ResultState.REJECTED, interlock=Interlock.LATE, reason=reason)
    key = AlertKey(HELD_BACK_RULE, SITE, gates.device)

    def alert() -> Any:
        with gates.service.store.begin() as tx:
            return tx.get(key)

    wait_until(lambda: alert() is not None, what="the held-back alert")
    stored = alert()
    assert (stored.alert.value, stored.alert.count) == ("cmd-held-1", 1)
    assert "op-north" in stored.meta.reason
    view = gates.service.gates.get("cmd-held-1")
    assert view is not None
    assert (view.state, view.interlock) == ("rejected", "late")
    edge.sub.close()
