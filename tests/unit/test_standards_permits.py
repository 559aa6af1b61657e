"""Permits as data (rules.standards.permits): the shipped templates pinned to shared/standards/emissions.md and
water.md, a site's overrides, bad files named by file, line and field, O2 correction and the limit checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config_loader import ConfigError
from rules.standards import (
    TEMPLATES_FILE,
    Basis,
    CorrectionNotApplicable,
    Permit,
    check_limit,
    load_permits,
    load_templates,
    o2_corrected,
)

TEMPLATES = load_templates()


@pytest.mark.parametrize(
    ("template", "o2_ref"),
    [
        pytest.param("coal_power_ultra_low", 6, id="ultra-low-6pct"),
        pytest.param("gb13223_coal_new", 6, id="coal-boiler-6pct"),
        pytest.param("gb13223_coal_existing", 6, id="coal-boiler-existing-6pct"),
        pytest.param("gb13223_gas_boiler", 3, id="gas-boiler-3pct"),
        pytest.param("gb13223_gas_turbine", 15, id="gas-turbine-15pct"),
        pytest.param("gb13271_coal_boiler", 9, id="industrial-coal-boiler-9pct"),
        pytest.param("gb13271_oil_gas_boiler", 3.5, id="industrial-oil-gas-boiler-3.5pct"),
        pytest.param("sinter_machine_head", 16, id="sinter-16pct"),
        pytest.param("gb8978_grade1", None, id="wastewater-no-o2"),
    ],
)
def test_template_reference_o2(template: str, o2_ref: float | None) -> None:
    assert TEMPLATES[template].o2_ref == o2_ref


@pytest.mark.parametrize(
    ("template", "pollutant", "basis", "limit"),
    [
        # emissions.md, "Ultra-low emission": dust 10, SO2 35, NOx 50 at 6 % O2 (hourly means)
        pytest.param("coal_power_ultra_low", "dust", "hourly_mean", 10, id="ultra-low-dust"),
        pytest.param("coal_power_ultra_low", "so2", "hourly_mean", 35, id="ultra-low-so2"),
        pytest.param("coal_power_ultra_low", "nox", "hourly_mean", 50, id="ultra-low-nox"),
        # emissions.md, GB 13223-2011 Table 1
        pytest.param("gb13223_coal_new", "so2", "hourly_mean", 100, id="gb13223-coal-new-so2"),
        pytest.param("gb13223_coal_existing", "so2", "hourly_mean", 200, id="gb13223-coal-existing-so2"),
        pytest.param("gb13223_coal_new", "nox", "hourly_mean", 100, id="gb13223-coal-nox"),
        pytest.param("gb13223_coal_new", "dust", "hourly_mean", 30, id="gb13223-coal-dust"),
        pytest.param("gb13223_coal_new", "hg", "hourly_mean", 0.03, id="gb13223-coal-hg"),
        pytest.param("gb13223_gas_boiler", "nox", "hourly_mean", 100, id="gb13223-gas-boiler-nox"),
        pytest.param("gb13223_gas_turbine", "nox", "hourly_mean", 50, id="gb13223-gas-turbine-nox"),
        pytest.param("gb13223_gas_turbine", "so2", "hourly_mean", 35, id="gb13223-gas-turbine-so2"),
        # water.md, GB 8978-1996 Table 4, other dischargers
        pytest.param("gb8978_grade1", "cod", "daily_mean", 100, id="gb8978-1-cod"),
        pytest.param("gb8978_grade2", "cod", "daily_mean", 150, id="gb8978-2-cod"),
        pytest.param("gb8978_grade3", "cod", "daily_mean", 500, id="gb8978-3-cod"),
        pytest.param("gb8978_grade1", "nh3_n", "daily_mean", 15, id="gb8978-1-nh3n"),
        pytest.param("gb8978_grade2", "nh3_n", "daily_mean", 25, id="gb8978-2-nh3n"),
        pytest.param("gb8978_grade1", "ss", "daily_mean", 70, id="gb8978-1-ss"),
        pytest.param("gb8978_grade3", "bod5", "daily_mean", 300, id="gb8978-3-bod5"),
    ],
)
def test_template_limits(template: str, pollutant: str, basis: str, limit: float) -> None:
    assert getattr(TEMPLATES[template].limits[pollutant], basis) == limit


def test_templates_without_values_in_the_facts_ship_no_limits() -> None:
    for name in ("gb13271_coal_boiler", "gb13271_oil_gas_boiler", "sinter_machine_head"):
        assert TEMPLATES[name].limits == {}
    assert "nh3_n" not in TEMPLATES["gb8978_grade3"].limits  # water.md: "–" for grade 3
    assert TEMPLATES["gb8978_grade2"].limits["ph"].range == (6, 9)


def test_templates_are_package_data() -> None:
    assert TEMPLATES_FILE.name == "permits.yaml"
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    assert '"standards/*.yaml"' in pyproject.read_text(encoding="utf-8")


SITE = """\
sources:
  - site: baoshan
    device: cems-1
    template: coal_power_ultra_low
    limits:
      so2: {hourly_mean: 30, load: {value: 350, unit: t/a}}
  - site: baoshan
    device: outlet-1
    template: gb8978_grade1
  - site: minhang
    device: boiler-2
    medium: flue_gas
    o2_ref: 3.5
    basis: DB31 local standard (permit 2025-001)
    limits:
      nox: {hourly_mean: 50}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "permits.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_site_file_overrides_per_source(tmp_path: Path) -> None:
    permits = load_permits(_write(tmp_path, SITE))
    cems = permits[("baoshan", "cems-1")]
    assert (cems.o2_ref, cems.limits["so2"].hourly_mean, cems.limits["nox"].hourly_mean) == (6, 30, 50)
    assert cems.limits["so2"].load is not None
    assert (cems.limits["so2"].load.value, cems.limits["so2"].load.unit) == (350, "t/a")
    assert permits[("baoshan", "outlet-1")].limits["cod"].daily_mean == 100
    own = permits[("minhang", "boiler-2")]
    assert (own.template, own.o2_ref, own.basis) == (None, 3.5, "DB31 local standard (permit 2025-001)")
    # the shipped template is not changed by an override
    assert TEMPLATES["coal_power_ultra_low"].limits["so2"].hourly_mean == 35


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    template: coal_power_ultra_low\n    limits:\n"
            "      so2: {hourly_mean: -3}\n",
            ":6: permit file, field sources[0].limits.so2.hourly_mean: Input should be greater than or equal to 0",
            id="negative-limit-line-6",
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    template: coal_power_ultra_low\n    limits:\n"
            "      so2: {hourly_mean: 30, daily: 20}\n",
            ":6: permit file, field sources[0].limits.so2.daily: Extra inputs are not permitted",
            id="unknown-key-line-6",
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    template: coal_power\n",
            ":4: permit file, field sources[0].template: unknown template 'coal_power'",
            id="unknown-template-line-4",
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    medium: flue_gas\n    limits: {so2: {hourly_mean: 5}}\n",
            ":2: permit file, field sources[0].o2_ref: a flue-gas source needs its reference O2",
            id="flue-gas-without-o2-ref-at-the-entry",
        ),
        pytest.param(
            "sources:\n  - {site: a, device: b, template: gb8978_grade1}\n"
            "  - {site: a, device: b, template: gb8978_grade2}\n",
            ":3: permit file, field sources[1].device: duplicate source a/b",
            id="duplicate-source-line-3",
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    template: gb8978_grade1\n    limits:\n"
            "      ph: {range: [9, 6]}\n",
            ":6: permit file, field sources[0].limits.ph.range: range [9.0, 6.0]: low must not be above high",
            id="range-reversed-line-6",
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    template: gb8978_grade2\n    o2_ref: 6\n",
            ":5: permit file, field sources[0].o2_ref: a wastewater outlet has no reference O2",
            id="wastewater-with-o2-ref-line-5",
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n   template: x\n", ":4: not valid YAML", id="yaml-syntax-line-4"
        ),
        pytest.param(
            "sources:\n  - site: a\n    device: b\n    o2_ref: 21\n    medium: flue_gas\n",
            ":4: permit file, field sources[0].o2_ref: Input should be less than 21",
            id="o2-ref-21-line-4",
        ),
    ],
)
def test_bad_file_names_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_permits(path)
    assert any(p.startswith(str(path)) and expected in p for p in err.value.problems), err.value.problems


def test_bad_template_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(
        "templates:\n  x:\n    title: X\n    basis: test\n    medium: wastewater\n    o2_ref: 6\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"templates.yaml:\d+: permit templates, field templates.x"):
        load_templates(path)


# --- pure checks -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("c", "o2", "o2_ref", "expected"),
    [
        pytest.param(30.0, 6.0, 6.0, 30.0, id="at-reference-unchanged"),
        pytest.param(30.0, 11.0, 6.0, 45.0, id="diluted-gas-raised"),  # 30 * 15 / 10
        pytest.param(40.0, 18.0, 15.0, 80.0, id="turbine-15pct"),  # 40 * 6 / 3
        pytest.param(10.0, 0.0, 6.0, 10.0 * 15 / 21, id="zero-o2"),
    ],
)
def test_o2_correction(c: float, o2: float, o2_ref: float, expected: float) -> None:
    assert o2_corrected(c, o2, o2_ref) == pytest.approx(expected)


@pytest.mark.parametrize(
    "o2", [pytest.param(20.0, id="20pct-air"), pytest.param(20.9, id="ambient-air"), pytest.param(-0.1, id="negative")]
)
def test_o2_correction_refused_when_probe_reads_air(o2: float) -> None:
    with pytest.raises(CorrectionNotApplicable, match="not corrected"):
        o2_corrected(30.0, o2, 6.0)


@pytest.fixture
def permits(tmp_path: Path) -> dict[tuple[str, str], Permit]:
    return dict(load_permits(_write(tmp_path, SITE)))


@pytest.mark.parametrize(
    ("source", "pollutant", "basis", "value", "unit", "exceeded"),
    [
        pytest.param("cems-1", "so2", "hourly_mean", 30.0, None, False, id="equal-to-limit-complies"),
        pytest.param("cems-1", "so2", "hourly_mean", 30.01, None, True, id="just-above-limit"),
        pytest.param("cems-1", "dust", Basis.HOURLY_MEAN, 9.9, None, False, id="below-limit"),
        pytest.param("cems-1", "so2", "load", 351.0, "t/a", True, id="load-above"),
        pytest.param("outlet-1", "ph", "daily_mean", 6.0, None, False, id="ph-6-inside"),
        pytest.param("outlet-1", "ph", "daily_mean", 9.2, None, True, id="ph-9.2-outside"),
        pytest.param("outlet-1", "cod", "daily_mean", 100.0, None, False, id="cod-100-complies"),
    ],
)
def test_check_limit(
    permits: dict[tuple[str, str], Permit],
    source: str,
    pollutant: str,
    basis: str,
    value: float,
    unit: str | None,
    exceeded: bool,
) -> None:
    verdict = check_limit(permits[("baoshan", source)], pollutant, basis, value, unit=unit)
    assert verdict is not None
    assert verdict.exceeded is exceeded


def test_check_limit_without_a_limit_and_with_a_wrong_unit(permits: dict[tuple[str, str], Permit]) -> None:
    cems = permits[("baoshan", "cems-1")]
    assert check_limit(cems, "so2", "daily_mean", 10.0) is None
    assert check_limit(cems, "co", "hourly_mean", 10.0) is None
    assert check_limit(cems, "nox", "load", 10.0, unit="t/a") is None
    with pytest.raises(ValueError, match="load given in 'kg/h', the limit is in t/a"):
        check_limit(cems, "so2", "load", 10.0, unit="kg/h")
