"""Request coalescing: as few requests as the device's limits allow, and a per-address fallback."""

from __future__ import annotations

import pytest

from device_profiles import ModbusPoint, ModbusSpec, load_catalogue
from edge_agent.planner import PlanError, plan, split


def hr(name: str, address: int, type_: str = "uint16", **kw: object) -> ModbusPoint:
    return ModbusPoint.model_validate(
        {"name": name, "function": "holding_register", "address": address, "type": type_, **kw}
    )


def spans(spec: ModbusSpec) -> list[tuple[str, int, int, list[str]]]:
    return [(r.function.value, r.start, r.count, [p.name for p in r.points]) for r in plan(spec)]


@pytest.mark.parametrize(
    ("points", "limits", "expected"),
    [
        pytest.param(
            [hr("a", 0), hr("b", 1), hr("c", 2)],
            {},
            [("holding_register", 0, 3, ["a", "b", "c"])],
            id="adjacent-registers-one-request",
        ),
        pytest.param(
            [hr("a", 0), hr("b", 5)],
            {"max_gap": 4},
            [("holding_register", 0, 6, ["a", "b"])],
            id="gap-within-max-gap-joined",
        ),
        pytest.param(
            [hr("a", 0), hr("b", 6)],
            {"max_gap": 4},
            [("holding_register", 0, 1, ["a"]), ("holding_register", 6, 1, ["b"])],
            id="gap-beyond-max-gap-split",
        ),
        pytest.param(
            [hr("a", 0), hr("b", 1)],
            {"max_gap": 0},
            [("holding_register", 0, 2, ["a", "b"])],
            id="max-gap-zero-still-joins-adjacent",
        ),
        pytest.param(
            [hr("a", 0, "float32"), hr("b", 2, "float32"), hr("c", 4, "float32")],
            {"max_registers_per_request": 4},
            [("holding_register", 0, 4, ["a", "b"]), ("holding_register", 4, 2, ["c"])],
            id="register-limit-never-cuts-a-point",
        ),
        pytest.param(
            [hr("s1", 5, "bit", bit=0), hr("s2", 5, "bit", bit=7), hr("x", 6)],
            {},
            [("holding_register", 5, 2, ["s1", "s2", "x"])],
            id="bits-of-one-register-share-it",
        ),
        pytest.param(
            [hr("b", 9), hr("a", 0)],
            {"max_gap": 10},
            [("holding_register", 0, 10, ["a", "b"])],
            id="order-in-profile-does-not-matter",
        ),
    ],
)
def test_plan_coalesces(
    points: list[ModbusPoint], limits: dict[str, int], expected: list[tuple[str, int, int, list[str]]]
) -> None:
    assert spans(ModbusSpec(points=points, **limits)) == expected


def test_functions_are_planned_separately() -> None:
    spec = ModbusSpec(
        points=[
            hr("h", 0),
            ModbusPoint(name="i", function="input_register", address=0, type="uint16"),
            ModbusPoint(name="c", function="coil", address=0, type="bool"),
            ModbusPoint(name="d", function="coil", address=1, type="bool"),
        ]
    )
    assert sorted(spans(spec)) == [
        ("coil", 0, 2, ["c", "d"]),
        ("holding_register", 0, 1, ["h"]),
        ("input_register", 0, 1, ["i"]),
    ]


def test_bit_limit_applies_to_coils() -> None:
    coils = [ModbusPoint(name=f"c{i}", function="coil", address=i, type="bool") for i in range(10)]
    requests = plan(ModbusSpec(points=coils, max_bits_per_request=4))
    assert [(r.start, r.count) for r in requests] == [(0, 4), (4, 4), (8, 2)]


def test_point_larger_than_limit_is_a_plan_error() -> None:
    spec = ModbusSpec(points=[hr("name", 0, "string", length=20)], max_registers_per_request=10)
    with pytest.raises(PlanError, match="'name' needs 20 registers"):
        plan(spec)


def test_split_gives_one_request_per_address_range() -> None:
    spec = ModbusSpec(points=[hr("a", 0, "float32"), hr("s1", 2, "bit", bit=0), hr("s2", 2, "bit", bit=3), hr("b", 3)])
    (block,) = plan(spec)
    assert [(r.start, r.count, [p.name for p in r.points]) for r in split(block)] == [
        (0, 2, ["a"]),
        (2, 1, ["s1", "s2"]),
        (3, 1, ["b"]),
    ]


@pytest.mark.parametrize(
    ("profile", "requests"),
    [
        ("water_quality_station", 1),
        ("sluice_gate_plc", 3),
        ("flue_gas_cems", 2),
        ("air_quality_station", 3),
    ],
)
def test_shipped_profiles_plan_compactly(profile: str, requests: int) -> None:
    spec = load_catalogue()[profile].modbus
    assert spec is not None
    assert len(plan(spec)) == requests
