"""The console's translation catalogue is complete: every catalogue point, profile, rule title, command state,
interlock, quality word and reason, device state and API error code has an English and a Chinese entry, and the
shipped JSON files are what ``python -m api.i18n`` writes."""

from __future__ import annotations

import json
import re

import pytest

from api import i18n
from api.live import DEVICE_STATES, STATE_REASONS
from device_profiles import load_catalogue
from device_profiles.derive import CALIBRATION, MAINTENANCE
from edge_agent.hj212.mapping import FLAG_QUALITY
from rules import PACKS, Severity, load_rules
from telemetry.commands import Action, Interlock, ResultState
from telemetry.models import Quality

_HAN = re.compile(r"[\u4e00-\u9fff]")


def _load(lang: str) -> dict[str, object]:
    data = json.loads((i18n.FOLDER / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _table(lang: str, key: str) -> dict[str, str]:
    table = _load(lang)[key]
    assert isinstance(table, dict)
    return table


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_the_shipped_files_are_what_the_module_writes(lang: str) -> None:
    assert (i18n.FOLDER / f"{lang}.json").read_text(encoding="utf-8") == i18n.render(lang), "run: python -m api.i18n"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
@pytest.mark.parametrize(
    ("key", "wanted"),
    [
        pytest.param("points", lambda: i18n.point_names(dict(load_catalogue()).values()), id="catalogue-points"),
        pytest.param("profiles", lambda: set(dict(load_catalogue())), id="profiles"),
        pytest.param("rules", lambda: {r.id for r in load_rules([PACKS])}, id="rule-titles"),
        pytest.param(
            "units", lambda: {u for p in dict(load_catalogue()).values() for u in p.units.values() if u}, id="units"
        ),
        pytest.param(
            "command_states", lambda: {s.value for s in ResultState} | {a.value for a in Action}, id="command-states"
        ),
        pytest.param("interlocks", lambda: {i.value for i in Interlock}, id="interlocks"),
        pytest.param("quality", lambda: {q.value for q in Quality} | {"unknown"}, id="quality-words"),
        pytest.param(
            "quality_reasons",
            lambda: {MAINTENANCE, CALIBRATION} | {f[1] for f in FLAG_QUALITY.values() if f is not None},
            id="quality-reasons",
        ),
        pytest.param("device_states", lambda: set(DEVICE_STATES), id="device-states"),
        pytest.param(
            "point_states", lambda: i18n.point_state_labels(dict(load_catalogue()).values()), id="coded-point-states"
        ),
        pytest.param("state_reasons", lambda: set(STATE_REASONS), id="state-reasons"),
        pytest.param("severities", lambda: {s.value for s in Severity}, id="severities"),
        pytest.param("errors", i18n.error_codes, id="api-error-codes"),
    ],
)
def test_every_shown_word_has_an_entry(lang: str, key: str, wanted: object) -> None:
    assert callable(wanted)
    names = wanted()
    assert names, "nothing to check: the test would pass by doing nothing"
    table = _table(lang, key)
    missing = sorted(n for n in names if not table.get(n, "").strip())
    assert missing == [], f"{lang}.json {key} lacks {missing}"


@pytest.mark.parametrize(
    "key",
    [
        "points",
        "profiles",
        "rules",
        "command_states",
        "interlocks",
        "quality",
        "device_states",
        "state_reasons",
        "errors",
    ],
)
def test_the_chinese_entries_are_chinese(key: str) -> None:
    """A zh-CN entry copied from English is an untranslated string (a few are the same in both: pH, PM2.5)."""
    zh, en = _table("zh-CN", key), _table("en", key)
    same_allowed = {"ph", "pm10", "pm25"}
    untranslated = sorted(k for k, v in zh.items() if not _HAN.search(v) and k not in same_allowed)
    assert untranslated == []
    assert set(zh) == set(en)


def test_error_placeholders_match_across_languages() -> None:
    zh, en = _table("zh-CN", "errors"), _table("en", "errors")
    for code, text in en.items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", zh[code])), code


def test_every_error_code_the_api_raises_is_found() -> None:
    codes = i18n.error_codes()
    for code in ("device.not_found", "password.too_short", "interlock.local_mode", "auth.token_invalid"):
        assert code in codes
    assert "interlock.level_difference.opening" in codes


def test_composed_point_titles() -> None:
    assert i18n.point_title("so2_zs_hour_avg") == ("SO2 (O2-corrected), hourly mean", "二氧化硫（折算）小时均值")
    assert i18n.point_title("cod_total") == ("COD, total", "化学需氧量累计量")
    assert i18n.point_title("no_such_point_x") is None


def test_quality_reason_patterns_read_the_edges_reasons() -> None:
    patterns = _load("zh-CN")["quality_reason_patterns"]
    assert isinstance(patterns, list)
    text = "12.5 outside the range [0, 10]"
    hits = [(p, t) for p, t in patterns if re.match(p, text)]
    assert hits
    match = re.match(hits[0][0], text)
    assert match is not None
    assert hits[0][1].format(**match.groupdict()) == "12.5 超出量程 [0, 10]"


def test_every_shipped_rule_has_a_chinese_title() -> None:
    rules = load_rules([PACKS])
    assert rules
    assert sorted(r.id for r in rules if not _HAN.search(r.title_zh)) == []
