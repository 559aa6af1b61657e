"""Signed commands and results (telemetry.signing): canonical bytes pinned, signatures that verify after the wire and
fail on any change; key files (telemetry.keys): made 0600 from the start, kept, refused when others may read them."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeline.cli import main
from telemetry import encode
from telemetry.commands import Action, Command, CommandResult, Interlock, ResultState
from telemetry.keys import KeyFileError, SiteKeyFiles, create_site_keys, load_signing_key, load_verify_key
from telemetry.signing import SignatureError, SigningKey, canonical_bytes, command_digest, sign, verify

KEY = SigningKey.of(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))  # fixed: Ed25519 is deterministic
OTHER = SigningKey.of(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
COMMAND = Command(
    id="cmd-1",
    site="north",
    device="gate-1",
    action=Action.SET_OPENING,
    target_pct=40,
    issued_ms=1795600800000,
    expires_ms=1795600830000,
    operator="op-wu",
    source="10.0.0.7",
)
RESULT = CommandResult(
    id="cmd-1",
    site="north",
    device="gate-1",
    state=ResultState.COMPLETED,
    ts=1795600812345,
    before={"opening_m": 1.0, "remote": True},
    after={"opening_m": 2.6},
    opening_m=2.6,
    target_m=2.6,
    cmd_sha256=command_digest(COMMAND),
)


# -- golden: these bytes are the contract; a change here breaks every deployed edge agent ---------------------------
def test_canonical_bytes_of_a_command_are_pinned() -> None:
    assert KEY.kid == "56475aa75463474c0285df5dbf2bcab7"
    signed = sign(COMMAND, KEY)
    assert canonical_bytes(signed) == (
        b'lifeline/v1 command\n{"action":"set_opening","device":"gate-1","expires_ms":1795600830000,"id":"cmd-1",'
        b'"issued_ms":1795600800000,"kid":"56475aa75463474c0285df5dbf2bcab7","operator":"op-wu","site":"north",'
        b'"source":"10.0.0.7","target_pct":40.0,"v":1}'
    )
    assert signed.sig == "KOQwqfAuy6yVT5NTZV6h01pafMHO83DsuraLD8n5vvvMmwJSX/Xr5ExtUAJP19+UyhyEa2axXzxrZ8FIy4KdAQ=="
    assert command_digest(COMMAND) == "ff41cd40cb0ccc0deb057d69f1d5f0d00775adf8da1bcc4ffb54b3ab931a7678"
    assert command_digest(signed) == command_digest(COMMAND)  # the digest leaves kid and sig out


def test_canonical_bytes_of_a_result_are_pinned() -> None:
    signed = sign(RESULT, KEY)
    assert canonical_bytes(signed) == (
        b'lifeline/v1 command_result\n{"after":{"opening_m":2.6},"before":{"opening_m":1.0,"remote":true},'
        b'"cmd_sha256":"ff41cd40cb0ccc0deb057d69f1d5f0d00775adf8da1bcc4ffb54b3ab931a7678","device":"gate-1",'
        b'"id":"cmd-1","interlock":null,"kid":"56475aa75463474c0285df5dbf2bcab7","opening_m":2.6,"reason":"",'
        b'"repeat":false,"site":"north","state":"completed","target_m":2.6,"ts":1795600812345,"v":1}'
    )
    assert signed.sig == "snJ6+XEOlg7x+no3T45zZuDIKB47lr+j06phhGLhZxorx2szfR4xKd+cGrMgQFbG1GGdJgpMc28gS57ixsaCAA=="


def test_wire_order_and_spacing_do_not_matter() -> None:
    signed = sign(COMMAND, KEY)
    reordered = (
        (
            '{"sig": "SIG", "v": 1, "source": "10.0.0.7", "operator": "op-wu", "expires_ms": 1795600830000, '
            '"issued_ms": 1795600800000, "target_pct": 40, "action": "set_opening", "device": "gate-1", '
            '"site": "north", "id": "cmd-1", "kid": "KID"}'
        )
        .replace("SIG", signed.sig or "")
        .replace("KID", KEY.kid)
    )
    verify(Command.model_validate_json(reordered), KEY.verify_key)


# -- round trips through the wire ---------------------------------------------------------------------------------
ids = st.from_regex(r"^[a-z0-9][a-z0-9_.-]{0,20}$", fullmatch=True)
texts = st.text(min_size=1, max_size=40)
values = st.one_of(
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.none(),
)


@st.composite
def commands(draw: st.DrawFn) -> Command:
    action = draw(st.sampled_from(Action))
    issued = draw(st.integers(0, 2**41))
    return Command(
        id=draw(ids),
        site=draw(ids),
        device=draw(ids),
        action=action,
        target_pct=draw(st.floats(0, 100)) if action is Action.SET_OPENING else None,
        point=draw(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda n: n not in ("time", "ts")))
        if action is Action.WRITE
        else None,
        value=draw(st.booleans() | st.floats(-1e9, 1e9)) if action is Action.WRITE else None,
        cancels=draw(ids) if action is Action.CANCEL else None,
        issued_ms=issued,
        expires_ms=issued + draw(st.integers(1, 10**7)),
        operator=draw(texts),
        source=draw(st.text(max_size=40)),
    )


@st.composite
def results(draw: st.DrawFn) -> CommandResult:
    return CommandResult(
        id=draw(ids),
        site=draw(ids),
        device=draw(ids),
        state=draw(st.sampled_from(ResultState)),
        ts=draw(st.integers(0, 2**41)),
        interlock=draw(st.none() | st.sampled_from(Interlock)),
        reason=draw(st.text(max_size=40)),
        before=draw(st.dictionaries(texts, values, max_size=4)),
        after=draw(st.dictionaries(texts, values, max_size=4)),
        opening_m=draw(st.none() | st.floats(-10, 10)),
        repeat=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None)
@given(commands())
def test_a_signed_command_verifies_after_the_wire(command: Command) -> None:
    for wire in (encode(sign(command, KEY)), sign(command, KEY).model_dump_json(exclude_none=True).encode()):
        verify(Command.model_validate_json(wire), KEY.verify_key)


@settings(max_examples=60, deadline=None)
@given(results())
def test_a_signed_result_verifies_after_the_wire(result: CommandResult) -> None:
    wire = sign(result, KEY).model_dump_json(exclude_none=True)  # as the edge sends it
    verify(CommandResult.model_validate_json(wire), KEY.verify_key)


# -- refusals -----------------------------------------------------------------------------------------------------
def _changed(**update: Any) -> Callable[[Command], Command]:
    return lambda signed: signed.model_copy(update=update)


REFUSED: list[tuple[str, Callable[[Command], Command], str]] = [
    ("unsigned", lambda s: COMMAND, "not signed"),
    ("no-kid", _changed(kid=None), "not signed"),
    ("other-key", lambda s: sign(COMMAND, OTHER), "not with the expected key"),
    (
        "other-key-claiming-our-kid",
        lambda s: sign(COMMAND, OTHER).model_copy(update={"kid": KEY.kid}),
        "does not verify",
    ),
    ("not-base64", _changed(sig="not base64!"), "not base64"),
    ("short", _changed(sig="AAAA"), "has 3 bytes"),
    ("a-result's-signature", lambda s: s.model_copy(update={"sig": sign(RESULT, KEY).sig}), "does not verify"),
    *[
        (f"changed-{f}", _changed(**{f: v}), "does not verify")
        for f, v in [
            ("id", "cmd-2"),
            ("site", "south"),
            ("device", "gate-2"),
            ("target_pct", 41.0),
            ("issued_ms", 1),
            ("expires_ms", 1795600830001),
            ("operator", "intruder"),
            ("source", "10.0.0.8"),
        ]
    ],
    ("changed-action", _changed(action=Action.OPEN, target_pct=None), "does not verify"),
]


@pytest.mark.parametrize(("make", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_command_that_does_not_verify_is_refused_saying_why(make: Callable[[Command], Command], words: str) -> None:
    with pytest.raises(SignatureError, match=words):
        verify(make(sign(COMMAND, KEY)), KEY.verify_key)


def test_nothing_verifies_without_a_key() -> None:
    with pytest.raises(SignatureError, match="no key"):
        verify(sign(COMMAND, KEY), None)


@pytest.mark.parametrize("field", ["state", "reason", "after", "repeat", "cmd_sha256", "ts"])
def test_a_result_changed_after_signing_is_refused(field: str) -> None:
    change = {
        "state": ResultState.FAILED,
        "reason": "x",
        "after": {"opening_m": 6.0},
        "repeat": True,
        "cmd_sha256": "0" * 64,
        "ts": 1,
    }[field]
    with pytest.raises(SignatureError, match="does not verify"):
        verify(sign(RESULT, KEY).model_copy(update={field: change}), KEY.verify_key)


# -- key files ----------------------------------------------------------------------------------------------------
@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: a file is then as open as the mode it was created with (proves 0600 is set at creation)."""
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_created_0600_and_kept(tmp_path: Path, open_umask: None) -> None:
    made = create_site_keys(tmp_path, ["north", "south"])
    expected = [("north", "control"), ("north", "site"), ("south", "control"), ("south", "site")]
    assert [(k.site, k.role, k.created) for k in made] == [(*e, True) for e in expected]
    files = SiteKeyFiles.of(tmp_path, "north")
    assert (_mode(files.control_private), _mode(files.site_private)) == (0o600, 0o600)
    assert (_mode(files.control_public), _mode(files.site_public)) == (0o644, 0o644)
    assert _mode(files.folder) == 0o700
    assert load_signing_key(files.control_private).kid == load_verify_key(files.control_public).kid == made[0].kid
    assert load_signing_key(files.site_private).kid != made[0].kid
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.*")}
    again = create_site_keys(tmp_path, ["north", "south"])
    assert [(k.kid, k.created) for k in again] == [(k.kid, False) for k in made]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.*")} == before  # never overwritten


def test_a_lost_public_file_is_written_again_from_its_private_key(tmp_path: Path) -> None:
    (made, _) = create_site_keys(tmp_path, ["north"])
    files = SiteKeyFiles.of(tmp_path, "north")
    files.control_public.unlink()
    (again, _) = create_site_keys(tmp_path, ["north"])
    assert (again.kid, again.created) == (made.kid, False)
    assert load_verify_key(files.control_public).kid == made.kid


def test_a_public_file_without_its_private_key_is_not_replaced(tmp_path: Path) -> None:
    create_site_keys(tmp_path, ["north"])
    files = SiteKeyFiles.of(tmp_path, "north")
    files.control_private.unlink()  # as on an edge machine: only the control key's public half
    pub = files.control_public.read_bytes()
    with pytest.raises(KeyFileError, match=r"control\.pub: a public key without its private key"):
        create_site_keys(tmp_path, ["north"])
    assert files.control_public.read_bytes() == pub
    assert not files.control_private.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620], ids=oct)
def test_a_private_key_others_may_access_is_refused_naming_the_file(tmp_path: Path, mode: int) -> None:
    create_site_keys(tmp_path, ["north"])
    path = SiteKeyFiles.of(tmp_path, "north").site_private
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"{path}: private key file is accessible by group or others") as info:
        load_signing_key(path)
    assert f"mode {mode:04o}" in str(info.value)
    assert "chmod 600" in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "load", "words"),
    [
        ("missing.key", None, load_signing_key, "cannot read the key file"),
        ("garbage.key", b"not a key", load_signing_key, "not an unencrypted PEM private key"),
        ("public-as-private.key", "control.pub", load_signing_key, "not an unencrypted PEM private key"),
        ("private-as-public.pub", "control.key", load_verify_key, "not a PEM public key"),
    ],
    ids=["missing", "garbage", "public-as-private", "private-as-public"],
)
def test_a_bad_key_file_is_refused_naming_it(
    tmp_path: Path, name: str, content: bytes | str | None, load: Callable[[Path], object], words: str
) -> None:
    create_site_keys(tmp_path, ["north"])
    path = tmp_path / name
    if content is not None:
        data = content if isinstance(content, bytes) else (tmp_path / "north" / content).read_bytes()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, data)
        os.close(fd)
    with pytest.raises(KeyFileError, match=f"{path}: {words}"):
        load(path)


def test_a_site_id_must_be_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no valid site id"):
        create_site_keys(tmp_path, ["../etc"])


def test_cli_prints_only_public_fingerprints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--dir", str(tmp_path), "--site", "north", "--site", "south"]) == 0
    out = capsys.readouterr().out.splitlines()
    files = SiteKeyFiles.of(tmp_path, "north")
    assert out[0] == f"north control {load_verify_key(files.control_public).kid} created {files.control_public}"
    assert len(out) == 4
    assert not any("PRIVATE" in line or ".key" in line for line in out)
    assert main(["keys", "create", "--dir", str(tmp_path), "--site", "north"]) == 0
    assert [line.split()[3] for line in capsys.readouterr().out.splitlines()] == ["kept", "kept"]
    files.site_private.chmod(0o644)
    assert main(["keys", "create", "--dir", str(tmp_path), "--site", "north"]) == 1
    assert f"{files.site_private}: private key file is accessible" in capsys.readouterr().err
