"""The rule pack's edge.outbox.dropping raises on the agent's health points when outbox_dropped grows, and clears
once nothing more has been dropped for its window (rules/packs/edge.yaml)."""

from __future__ import annotations

import pytest

from rules import PACKS, Engine, load_rules
from telemetry import Sample, Telemetry

STEP_MS = 10_000  # the health interval


def health(ts: int, dropped: int) -> Telemetry:
    values: dict[str, float | int | bool | str | None] = {
        "outbox_messages": 5,
        "outbox_bytes": 900,
        "outbox_dropped": dropped,
        "outbox_resent": 0,
        "oldest_unconfirmed_age_s": 1.5,
    }
    return Telemetry(
        site="s1",
        device="edge",
        profile="edge_agent",
        measurement="edge_agent",
        seq=ts // STEP_MS + 1,
        run="r1",
        samples=[Sample(ts=ts, values=values)],
    )


@pytest.mark.parametrize(
    ("dropped", "expected"),
    [
        pytest.param([0] * 10, [], id="nothing-dropped"),
        pytest.param([7] * 10, [], id="dropped-before-this-window-only"),
        pytest.param([0, 0, 3, 3, 3], [(2, "critical")], id="drops-raise"),
        pytest.param(
            [0, 1] + [1] * 61 + [2],
            [(1, "critical"), (61, None), (63, "critical")],
            id="clears-after-ten-quiet-minutes-and-raises-again",
        ),
    ],
)
def test_outbox_dropping_rule(dropped: list[int], expected: list[tuple[int, str | None]]) -> None:
    (rule,) = [r for r in load_rules([PACKS / "edge.yaml"]) if r.id == "edge.outbox.dropping"]
    engine = Engine([rule])
    got = []
    for i, n in enumerate(dropped):
        got += [(t.ts // STEP_MS, t.severity) for t in engine.observe(health(i * STEP_MS, n))]
    assert got == expected
