"""The overwrite guard (``broker_bridge.overwrite``): which lines it judges from memory, which it sends to InfluxDB."""

from __future__ import annotations

import pytest

from broker_bridge.overwrite import Guard, Verdict, conflict, parse_fields

S = "gas_safety,device=gas-1,site=s1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("co=0.1", {"co": 0.1}, id="float"),
        pytest.param('co.q=2i,co.reason="timeout, again"', {"co.q": 2, "co.reason": "timeout, again"}, id="quality"),
        pytest.param('a\\ b\\,c\\=d=true,s="x\\"y\\\\"', {"a b,c=d": True, "s": 'x"y\\'}, id="escapes"),
        pytest.param("ok=false,n=-3i", {"ok": False, "n": -3}, id="bool-int"),
    ],
)
def test_parse_fields(text: str, expected: dict[str, object]) -> None:
    assert parse_fields(text) == expected


@pytest.mark.parametrize("text", ["=1", "co", 'co="open', "co=1 x=2"])
def test_parse_fields_refuses_what_is_not_a_field_set(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a field|unterminated"):
        parse_fields(text)


@pytest.mark.parametrize(
    ("stored", "incoming", "refused"),
    [
        pytest.param({"co": 0.1}, {"co": 0.1}, False, id="same-value"),
        pytest.param({"co": 1}, {"co": 1.0}, False, id="json-int-is-the-float"),
        pytest.param({"co": 0.1}, {"co": 55.0}, True, id="another-value"),
        pytest.param({"co": 0.1}, {"h2s": 3.0}, False, id="another-point-added"),
        pytest.param({"co.q": 2, "co.reason": "timeout"}, {"co": 55.0}, True, id="bad-reading-made-good"),
        pytest.param({"co": 0.1}, {"co": 0.1, "co.q": 2, "co.reason": "x"}, True, id="good-reading-made-bad"),
        pytest.param({"on": True}, {"on": 1.0}, True, id="bool-is-not-a-number"),
        pytest.param({}, {"co": 55.0}, False, id="nothing-stored"),
    ],
)
def test_conflict_by_point(stored: dict[str, object], incoming: dict[str, object], refused: bool) -> None:
    assert bool(conflict(stored, incoming)) is refused  # type: ignore[arg-type]


def line(fields: str, ts: int, series: str = S) -> str:
    return f"{series} {fields} {ts}"


def admit(guard: Guard, fields: str, ts: int, series: str = S) -> tuple[Verdict, str]:
    return guard.admit(series, line(fields, ts, series), ts)


def test_before_the_mark_is_learnt_every_line_is_checked_then_new_lines_pass_from_memory() -> None:
    guard = Guard()
    assert admit(guard, "co=0.1", 1000)[0] is Verdict.CHECK
    assert admit(guard, "co=0.2", 2000)[0] is Verdict.CHECK
    assert guard.checked(S, line("co=0.1", 1000), 1000, None) == ""
    guard.learn(S, 500)
    assert guard.mark(S) == 2000  # what it let through counts
    assert admit(guard, "co=0.3", 3000) == (Verdict.ACCEPT, "")
    assert guard.mark(S) == 3000


def test_the_attack_and_an_honest_redelivery_judged_from_memory() -> None:
    guard = Guard()
    guard.learn(S, None)
    assert admit(guard, "co=0.1", 1000) == (Verdict.ACCEPT, "")
    assert admit(guard, "co=0.1", 1000) == (Verdict.ACCEPT, "")  # the same reading again
    verdict, why = admit(guard, "co=55.0", 1000)
    assert verdict is Verdict.REFUSE
    assert "co stored 0.1, received 55.0" in why
    assert admit(guard, "h2s=3.0", 1000) == (Verdict.ACCEPT, "")  # another point at that time is no overwrite
    assert admit(guard, "h2s=4.0", 1000)[0] is Verdict.REFUSE  # ... and is kept as stored
    assert admit(guard, "co=0.1", 1000) == (Verdict.ACCEPT, "")


@pytest.mark.parametrize(
    ("times", "refused"),
    [
        pytest.param([4000, 4001, 4002], [], id="all-new-at-once"),
        pytest.param([3000, 4000], [(0, Verdict.REFUSE)], id="one-old-time-with-another-value"),
        pytest.param([1000, 4000], [(0, Verdict.CHECK)], id="one-old-time-not-remembered"),
    ],
)
def test_a_message_is_judged_at_once_when_all_its_times_are_new(
    times: list[int], refused: list[tuple[int, Verdict]]
) -> None:
    guard = Guard(per_series=1)  # 1 to 2 times remembered
    guard.learn(S, None)
    for ts in (1000, 2000, 3000):
        assert guard.admit_all(S, [line("co=0.1", ts)], [ts]) == ()
    verdicts = guard.admit_all(S, [line("co=0.7", ts) for ts in times], times)
    assert [(index, verdict) for index, verdict, _ in verdicts] == refused
    assert guard.mark(S) == max(times)
    assert admit(guard, "co=0.8", max(times))[0] is Verdict.REFUSE  # remembered


def test_an_old_time_no_longer_remembered_is_checked() -> None:
    guard = Guard(per_series=1)
    guard.learn(S, None)
    for ts in (1000, 2000, 3000):
        assert admit(guard, "co=0.1", ts)[0] is Verdict.ACCEPT
    assert admit(guard, "co=55.0", 1000)[0] is Verdict.CHECK  # 1000 fell out of memory
    assert "co stored 0.1" in guard.checked(S, line("co=55.0", 1000), 1000, {"co": 0.1})
    assert admit(guard, "co=0.1", 1000)[0] is Verdict.CHECK  # the refused line left no reference


def test_a_line_matching_one_still_unchecked_is_checked_too() -> None:
    guard = Guard()
    assert admit(guard, "co=55.0", 1000)[0] is Verdict.CHECK  # mark unknown: after a restart
    assert admit(guard, "co=55.0", 1000)[0] is Verdict.CHECK  # not accepted on the word of an unchecked line
    assert guard.checked(S, line("co=55.0", 1000), 1000, {"co": 0.1})
    assert guard.checked(S, line("co=55.0", 1000), 1000, {"co": 0.1})


def test_several_bridges_do_not_trust_their_own_mark() -> None:
    guard = Guard(trust_mark=False)
    guard.learn(S, None)
    assert admit(guard, "co=0.1", 1000)[0] is Verdict.CHECK
    assert guard.admit_all(S, [line("co=0.1", 2000)], [2000])[0][1] is Verdict.CHECK
    assert guard.checked(S, line("co=0.1", 1000), 1000, None) == ""
    assert admit(guard, "co=0.1", 1000)[0] is Verdict.ACCEPT  # remembered and verified


def test_a_line_influxdb_refused_is_forgotten() -> None:
    guard = Guard()
    guard.learn(S, None)
    admit(guard, 'co="text"', 1000)
    guard.forget(S, 1000, line('co="text"', 1000))
    assert admit(guard, "co=0.1", 1000)[0] is Verdict.CHECK  # before the mark, not remembered


def test_memory_is_bounded() -> None:
    guard = Guard(per_series=3, max_series=2)  # 3 to 6 times a series
    for n in range(5):
        series = f"m,device=d{n}"
        guard.learn(series, None)
        for ts in range(10):
            admit(guard, "v=1.0", ts, series)
    assert len(guard) == 2
    assert guard.needs_mark("m,device=d0")  # the oldest series went
    # the same reading again: accepted from memory if remembered (newest first: a checked one is remembered too)
    remembered = [ts for ts in range(9, -1, -1) if admit(guard, "v=1.0", ts, "m,device=d4")[0] is Verdict.ACCEPT]
    assert remembered == [9, 8, 7, 6, 5, 4]  # the newest kept; past twice per_series the older half went


def test_lines_before_the_mark_is_learnt_are_checked_at_once_and_verified_at_once() -> None:
    guard = Guard()
    lines = [line("co=0.1", ts) for ts in (1000, 2000)]
    assert guard.admit_all(S, lines, [1000, 2000]) == [(0, Verdict.CHECK, ""), (1, Verdict.CHECK, "")]
    assert admit(guard, "co=0.1", 1000)[0] is Verdict.CHECK  # not accepted before InfluxDB answered
    assert admit(guard, "co=9.0", 2000)[0] is Verdict.REFUSE  # the first claim stands
    guard.verified(S, [1000, 2000])
    assert admit(guard, "co=0.1", 1000) == (Verdict.ACCEPT, "")
