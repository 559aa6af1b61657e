"""HJ 212-2025 in the ingest, pure: SM4 (GB/T 32907) encryption of the CP (golden packets, round trips with the
simulator's own encoder, padding forms), refusal of an encrypted CP without a key or with the wrong one (counted
reason, dead letter, an answer that stops the resending), per-station keys as secrets, the heartbeat, CN 1001, the
2025 system codes and commands, and 2017 kept for the stations configured so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import load_catalogue
from edge_agent.hj212 import Frame, Hj212Config, Ingest, LoadedConfig, Outcome, Reason, build_config, load_config
from edge_agent.hj212.codes import SYSTEMS, encrypted_command
from edge_agent.hj212.sm4 import CpCipher, Sm4Error, looks_encrypted, parse_key
from infra.config_loader import ConfigError
from simulators.hj212 import _wire
from simulators.hj212 import frame as hj212_frame
from telemetry import decode_telemetry

PW = "123456"
KEY = "0123456789ABCDEFFEDCBA9876543210"  # GB/T 32907-2016 Appendix A's example key
OTHER_KEY = "00112233445566778899AABBCCDDEEFF"
SM4_MN, PLAIN_MN, OLD_MN = "WW2025", "WW2025NOKEY", "CEMS2017"
T0 = 1_795_600_800.0
CP = "DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag=N"
# the packet a 2025 logger sends for CP above with KEY (Flag 9: version 2, answer requested); written out once from
# the simulator's encoder, which does not use the server's code
GOLDEN = (
    b"##0197QN=20261125100000123;ST=32;CN=2011;PW=123456;MN=WW2025;Flag=9;CP=&&E5297E729EDCAD8C604E846A6EC486FD"
    b"099C4F530BD6E37234BA5C037809C52F875AE5EBE762279627FAD8A6D739F664E4E02EA613E760BBA8AC8DFC10D5B4E3&&0500\r\n"
)


def _seg(cn: str, cp: str, *, mn: str = SM4_MN, st: str = "32", flag: int = 9) -> str:
    return f"QN=20261125100000123;ST={st};CN={cn};PW={PW};MN={mn};Flag={flag};CP=&&{cp}&&"


def _frame(segment: str) -> Frame:
    raw = segment.encode()
    return Frame(raw, hj212_frame(raw))


def _zero_filled(text: str) -> bytes:
    data = text.encode()
    return data + bytes(-len(data) % 16)


def _sm4(cp: str, key: str = KEY) -> str:
    return _wire.sm4_encrypt(bytes.fromhex(key), cp)


def _loaded() -> LoadedConfig:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HJ212_TEST_PW", PW)
        mp.setenv("HJ212_TEST_KEY", KEY)
        station = {"site": "plant-9", "profile": "wastewater_outlet_hj212", "password": "env:HJ212_TEST_PW"}
        config = Hj212Config.model_validate(
            {
                "stations": [
                    {
                        **station,
                        "mn": SM4_MN,
                        "device": "outlet-1",
                        "version": 2025,
                        "sm4_key": {"env": "HJ212_TEST_KEY"},
                    },
                    {**station, "mn": PLAIN_MN, "device": "outlet-2", "version": 2025},
                    {**station, "mn": OLD_MN, "device": "cems-1", "profile": "flue_gas_cems_hj212"},
                ]
            }
        )
        return build_config(config, catalogue=load_catalogue())


_LOADED = _loaded()


@pytest.fixture
def ingest() -> Ingest:
    return Ingest(_LOADED)


def _handle(ingest: Ingest, segment: str | bytes) -> Outcome:
    item = _frame(segment) if isinstance(segment, str) else Frame(segment[6:-6], segment)
    return ingest.handle("127.0.0.1:40312", item, T0)


def _values(out: Outcome) -> dict[str, object]:
    [message] = out.messages
    [sample] = decode_telemetry(message.payload, message.topic).samples
    return dict(sample.values)


# -- SM4 itself --------------------------------------------------------------------------------------------------------
def test_sm4_is_gb_t_32907_by_its_own_example() -> None:
    # GB/T 32907-2016 Appendix A.1: plain text = key = 0123456789abcdeffedcba9876543210; the installed library's SM4
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.SM4(bytes.fromhex(KEY)), modes.ECB()).encryptor()
    assert enc.update(bytes.fromhex(KEY)).hex().upper() == "681EDF34D206965E86B3E94F536E4246"
    text = "DataTime=2026112"  # one whole block: no padding
    assert CpCipher(bytes.fromhex(KEY)).encrypt(text) == _sm4(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(KEY[:-2], "32 hex digits", id="short"),
        pytest.param(KEY + "00", "32 hex digits", id="long"),
        pytest.param("G" + KEY[1:], "32 hex digits", id="not-hex"),
    ],
)
def test_a_bad_key_is_named_without_showing_it(text: str, problem: str) -> None:
    with pytest.raises(Sm4Error, match=problem) as info:
        parse_key(text)
    assert text not in str(info.value)


@pytest.mark.parametrize(
    "written", [pytest.param(KEY, id="plain"), pytest.param(f"0x{KEY.lower()}", id="0x-lower"), pytest.param(" " + KEY)]
)
def test_key_forms(written: str) -> None:
    assert parse_key(written) == bytes.fromhex(KEY)


@pytest.mark.parametrize(
    ("plain", "padded"),
    [
        pytest.param(CP, CP.encode() + bytes(-len(CP) % 16), id="zero-filled"),
        pytest.param(CP, CP.encode() + bytes([16 - len(CP) % 16]) * (16 - len(CP) % 16), id="pkcs7"),
        pytest.param("DataTime=2026112", b"DataTime=2026112", id="whole-block-unpadded"),
        pytest.param("DataTime=2026112", b"DataTime=2026112" + bytes([16]) * 16, id="whole-block-pkcs7"),
        pytest.param("a01012-Rtd=1,备注=检修", _zero_filled("a01012-Rtd=1,备注=检修"), id="utf8-text"),
    ],
)
def test_either_padding_decrypts(plain: str, padded: bytes) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.SM4(bytes.fromhex(KEY)), modes.ECB()).encryptor()
    body = (enc.update(padded) + enc.finalize()).hex()
    assert CpCipher(bytes.fromhex(KEY)).decrypt(body) == plain


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=300))
def test_round_trip_with_the_simulators_encoder(text: str) -> None:
    cp = "k=" + text  # a CP's text has at least one key=value
    cipher = CpCipher(bytes.fromhex(KEY))
    assert cipher.decrypt(_sm4(cp)) == cp
    assert cipher.encrypt(cp) == _sm4(cp)
    assert looks_encrypted(cipher.encrypt(cp))


@pytest.mark.parametrize(
    ("body", "encrypted"),
    [
        pytest.param(_sm4(CP), True, id="ciphertext"),
        pytest.param(_sm4(CP).lower(), True, id="lower-case"),
        pytest.param(CP, False, id="plain"),
        pytest.param("", False, id="empty"),
        pytest.param("ABCDEF", False, id="not-whole-blocks"),
        pytest.param("0" * 31 + "G", False, id="not-hex"),
    ],
)
def test_an_encrypted_cp_is_known_by_its_form(body: str, encrypted: bool) -> None:
    assert looks_encrypted(body) is encrypted


def test_which_commands_are_encrypted() -> None:
    assert [cn for cn in ("2011", "2061", "2013", "1014", "3020", "9015", "1001", "1062") if encrypted_command(cn)] == [
        "2011",
        "2061",
        "2013",
        "1014",
        "3020",
    ]


# -- the ingest ------------------------------------------------------------------------------------------------------
def test_golden_encrypted_packet_is_decrypted_published_and_answered(ingest: Ingest) -> None:
    out = _handle(ingest, GOLDEN)
    assert out.accepted
    assert out.decrypted
    assert _values(out) == {"cod": 35.2}
    assert out.event["packet"]["encrypted"] == "SM4"  # type: ignore[index]
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9014;PW={PW};MN={SM4_MN};Flag=8;CP=&&&&").raw
    assert out.answer_on_ack


def test_encrypted_split_message_is_read_part_by_part(ingest: Ingest) -> None:
    parts = ["DataTime=20261125100000;w01018-Rtd=35.2", "DataTime=20261125100000;w21003-Rtd=2.5"]
    outs = [
        _handle(ingest, _seg("2011", _sm4(cp), flag=11).replace("CP=", f"PNUM=2;PNO={i};CP="))
        for i, cp in enumerate(parts, 1)
    ]
    assert all(o.accepted for o in outs)
    assert outs[0].messages == []
    assert _values(outs[1]) == {"cod": 35.2, "nh3_n": 2.5}


def test_a_keyed_station_may_still_send_plain_cp(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", CP))
    assert out.accepted
    assert not out.decrypted
    assert _values(out) == {"cod": 35.2}


@pytest.mark.parametrize(
    ("mn", "key", "reason", "detail"),
    [
        pytest.param(PLAIN_MN, KEY, Reason.NO_KEY, "has no sm4_key", id="no-key"),
        pytest.param(SM4_MN, OTHER_KEY, Reason.BAD_KEY, "wrong key", id="wrong-key"),
    ],
)
@pytest.mark.parametrize("flag", [9, 8], ids=["answer-requested", "no-answer-requested"])
def test_encrypted_cp_without_the_right_key_is_refused_kept_and_answered(
    ingest: Ingest, mn: str, key: str, reason: Reason, detail: str, flag: int
) -> None:
    out = _handle(ingest, _seg("2011", _sm4(CP, key), mn=mn, flag=flag))
    assert (out.accepted, out.reason) == (False, str(reason))
    assert detail in str(out.event["detail"])
    assert out.messages == []
    [note] = out.dead_letters  # the packet as sent (password masked), ciphertext included
    assert note.reason is reason
    assert _sm4(CP, key).encode() in note.raw
    assert PW.encode() not in note.raw
    assert out.station is not None
    assert out.station.mn == mn
    if flag & 1:  # 9011 QnRtn=2 (request refused): the logger stops resending it
        assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9011;PW={PW};MN={mn};Flag=8;CP=&&QnRtn=2&&").raw
    else:
        assert out.answer is None


def test_an_encrypted_cp_from_an_unknown_station_is_not_answered(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", _sm4(CP), mn="NOBODY"))
    assert (out.reason, out.answer) == (str(Reason.UNKNOWN_MN), None)


def test_a_decrypted_cp_that_does_not_parse_is_bad_cp(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("2011", _sm4("DataTime=20261125100000;w01018-Rtd=abc")))
    assert out.reason == str(Reason.BAD_CP)


# -- heartbeat, registration, codes ------------------------------------------------------------------------------------
def test_heartbeat_is_answered_and_marked(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("9015", "", st="91", flag=8))
    assert out.accepted
    assert out.heartbeat
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9013;PW={PW};MN={SM4_MN};Flag=8;CP=&&&&").raw


def test_cn_1001_registration_is_accepted_logged_and_answered(ingest: Ingest) -> None:
    out = _handle(ingest, _seg("1001", "HardwareSN=SN20260001", st="91"))
    assert out.accepted
    assert out.messages == []
    assert out.dead_letters == []
    assert out.event["packet"]["fields"] == {"HardwareSN": "SN20260001"}  # type: ignore[index]
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9014;PW={PW};MN={SM4_MN};Flag=8;CP=&&&&").raw


@pytest.mark.parametrize(
    ("st", "accepted"),
    [
        pytest.param("44", True, id="st44-electricity-use"),
        pytest.param("45", True, id="st45-working-conditions"),
        pytest.param("32", True, id="own-st"),
        pytest.param("31", False, id="another-source"),
        pytest.param("99", False, id="unknown"),
    ],
)
def test_2025_system_codes(ingest: Ingest, st: str, accepted: bool) -> None:
    out = _handle(ingest, _seg("2011", CP, st=st))
    assert out.accepted is accepted
    if not accepted:
        assert out.reason == str(Reason.BAD_ST)
        assert SYSTEMS.get(st, "not a known system code") in str(out.event["detail"]) or "not a known" in str(
            out.event["detail"]
        )


@pytest.mark.parametrize(
    ("cn", "cp"),
    [
        pytest.param("2013", "DataTime=20261125100000;FileName=spectrum-01.bin", id="2013-voc-spectra"),
        pytest.param("2021", "DataTime=20261125100000;w01018-RS=1", id="2021-running-state"),
        pytest.param("3020", "DataTime=20261125100000;i11001-Info=1", id="3020-information"),
        pytest.param("4321", "X=1", id="unknown-cn"),
    ],
)
def test_commands_not_ingested_are_kept_and_answered_not_resent_forever(ingest: Ingest, cn: str, cp: str) -> None:
    out = _handle(ingest, _seg(cn, _sm4(cp) if encrypted_command(cn) else cp))
    assert (out.accepted, out.reason) == (False, str(Reason.UNSUPPORTED_CN))
    [note] = out.dead_letters
    assert note.reason is Reason.UNSUPPORTED_CN
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9014;PW={PW};MN={SM4_MN};Flag=8;CP=&&&&").raw


def test_a_2017_station_is_answered_in_2017(ingest: Ingest) -> None:
    cp = "DataTime=20261125100000;a21026-Rtd=20.5,a21026-Flag=N"
    out = _handle(ingest, _seg("2011", cp, mn=OLD_MN, st="31", flag=5))
    assert out.accepted
    assert out.answer == _frame(f"QN=20261125100000123;ST=91;CN=9014;PW={PW};MN={OLD_MN};Flag=4;CP=&&&&").raw


# -- config -----------------------------------------------------------------------------------------------------------
def _write(tmp_path: Path, station: str) -> Path:
    path = tmp_path / "hj212.yaml"
    path.write_text(
        "stations:\n"
        "  - {mn: WW2025, site: plant-9, device: outlet-1, profile: wastewater_outlet_hj212, password: env:HJ212_PW,\n"
        f"     {station}}}\n",
        encoding="utf-8",
    )
    return path


def test_key_from_a_private_file_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HJ212_PW", PW)
    key = tmp_path / "outlet.key"
    key.write_text(KEY + "\n", encoding="utf-8")
    key.chmod(0o600)
    loaded = load_config(_write(tmp_path, "version: 2025, sm4_key: {file: outlet.key}"))
    station = loaded.stations["WW2025"]
    assert station.cipher is not None
    assert station.cipher.decrypt(_sm4(CP)) == CP
    shown = repr(station) + repr(loaded.config) + str(loaded.config.model_dump())
    assert KEY not in shown
    assert KEY.lower() not in shown


@pytest.mark.parametrize(
    ("station", "mode", "problem"),
    [
        pytest.param("sm4_key: {file: outlet.key}", 0o600, "needs version: 2025", id="key-on-2017"),
        pytest.param("version: 2025, sm4_key: {file: outlet.key}", 0o644, "chmod 600", id="key-file-not-private"),
        pytest.param("version: 2025, sm4_key: {file: missing.key}", 0o600, "missing.key", id="key-file-missing"),
        pytest.param(
            "version: 2025, sm4_key: {env: HJ212_NO_SUCH_KEY}", 0o600, "HJ212_NO_SUCH_KEY", id="key-env-unset"
        ),
        pytest.param("version: 2025, sm4_key: ABCDEF", 0o600, "32 hex digits", id="key-too-short"),
        pytest.param("version: 2012", 0o600, "version", id="unknown-edition"),
        pytest.param("version: 2025, heartbeat_s: 0", 0o600, "heartbeat_s", id="heartbeat-zero"),
    ],
)
def test_key_config_errors_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, station: str, mode: int, problem: str
) -> None:
    monkeypatch.setenv("HJ212_PW", PW)
    monkeypatch.delenv("HJ212_NO_SUCH_KEY", raising=False)
    key = tmp_path / "outlet.key"
    key.write_text(KEY + "\n", encoding="utf-8")
    key.chmod(mode)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, station))
    text = str(info.value)
    assert problem in text
    assert "hj212.yaml" in text
    assert KEY not in text
    assert os.environ.get("HJ212_NO_SUCH_KEY") is None


@given(st.binary(min_size=1, max_size=8).map(lambda b: (b * 16)[: 16 * len(b)].hex().upper()))
def test_any_ciphertext_is_read_or_refused_never_a_crash(body: str) -> None:
    ingest = Ingest(_LOADED)
    out = ingest.handle("127.0.0.1:40312", _frame(_seg("2011", body)), T0)
    assert out.accepted or out.reason in {str(Reason.BAD_KEY), str(Reason.BAD_CP)}
