"""The API config: a full example loads; errors name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.config import load_config
from infra.config_loader import ConfigError

EXAMPLE = """\
listen: {host: 127.0.0.1, port: 8080}
broker: {host: 127.0.0.1, port: 1883}
influx: {url: "http://127.0.0.1:8086", database: lifeline}
store: {url: "sqlite:///var/api/lifeline.sqlite"}
areas:
  yunzaobang: [yunzaobang-sluices, env-monitoring]
  lianqi: [lianqi-sluices]
auth: {session_lifetime_s: 28800, api_token_lifetime_days: 365, bootstrap_admin: admin}
rules: {paths: []}
history: {max_points: 2000, default_points: 500, max_range_days: 400}
gates:
  selection_s: 10
  default_ttl_s: 30
  edge_timeout_s: 10
  defaults: {full_opening_m: 6.5, max_head_open_m: 2.5}
  devices:
    - {site: lianqi-sluices, device: lq-gate-01, max_opening_m: 5.2, max_head_open_m: 1.5}
stream: {keepalive_s: 15}
"""


def test_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    assert config.area_of("lianqi-sluices") == "lianqi"
    assert config.area_of("elsewhere") is None
    one = config.gates.limits("lianqi-sluices", "lq-gate-01")
    other = config.gates.limits("lianqi-sluices", "lq-gate-02")
    assert one is not None
    assert other is not None
    assert (one.max_opening_m, one.max_head_open_m) == (5.2, 1.5)
    assert (other.max_opening_m, other.full_opening_m, other.max_head_open_m) == (None, 6.5, 2.5)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ("listen: {host: 127.0.0.1, port: 8080}", "listen: {host: 127.0.0.1, port: 99999}"),
            ":1: api config, field listen.port: Input should be less than or equal to 65535",
            id="port-out-of-range",
        ),
        pytest.param(
            ("  lianqi: [lianqi-sluices]", "  lianqi: [lianqi-sluices, env-monitoring]"),
            ":7: api config, field areas.lianqi[1]: site 'env-monitoring' is already in area 'yunzaobang'",
            id="site-in-two-areas",
        ),
        pytest.param(
            ("  lianqi: [lianqi-sluices]", "  lianqi: [Lianqi Sluices]"),
            ":7: api config, field areas.lianqi[0]: String should match pattern",
            id="site-id-pattern",
        ),
        pytest.param(
            ("stream: {keepalive_s: 15}", "stream: {keepalive_s: 15, colour: red}"),
            ":18: api config, field stream.colour: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            ("max_opening_m: 5.2,", "max_opening_m: 5.2, min_opening_m: 5.5,"),
            ":17: api config, field gates.devices[0].min_opening_m: need min_opening_m < max_opening_m",
            id="limits-reversed",
        ),
        pytest.param(
            ("max_opening_m: 5.2, max_head_open_m: 1.5", "max_opening_m: 5.2"),
            ":17: api config, field gates.devices[0].max_head_open_m: Field required",
            id="head-is-a-site-value",
        ),
        pytest.param(
            ("stream: {keepalive_s: 15}", "stream: {keepalive_s: 15}\nhttp: {trusted_proxies: ['*']}"),
            ":19: api config, field http.trusted_proxies[0]: ",
            id="trusted-proxy-wildcard",
        ),
        pytest.param(
            ("auth: {session_lifetime_s", "auth: {password: {min_length: 8}, session_lifetime_s"),
            ":8: api config, field auth.password.min_length: Input should be greater than or equal to 12",
            id="password-shorter-than-12",
        ),
        pytest.param(
            ("auth: {session_lifetime_s", "auth: {idle_timeout_s: 5, session_lifetime_s"),
            ":8: api config, field auth.idle_timeout_s: Input should be greater than or equal to 60",
            id="idle-timeout-too-short",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = tmp_path / "api.yaml"
    assert change[0] in EXAMPLE
    path.write_text(EXAMPLE.replace(change[0], change[1]))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.startswith(str(path)) and expected in p for p in info.value.problems), info.value.problems


def test_site_keys_load_relative_to_the_file_and_a_readable_private_key_is_refused(tmp_path: Path) -> None:
    from api.config import load_site_keys
    from telemetry.keys import create_site_keys

    create_site_keys(tmp_path / "keys", ["lianqi-sluices"])
    path = tmp_path / "api.yaml"
    path.write_text(
        EXAMPLE + "site_keys:\n  lianqi-sluices:\n"
        "    control_private_key: keys/lianqi-sluices/control.key\n"
        "    site_public_key: keys/lianqi-sluices/site.pub\n"
    )
    config = load_config(path)
    assert set(load_site_keys(config)) == {"lianqi-sluices"}
    key = tmp_path / "keys/lianqi-sluices/control.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:21: field site_keys.lianqi-sluices.control_private_key: {key}: private key")


def test_hardening_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(EXAMPLE + "http: {max_body_bytes: 131072, trusted_proxies: [10.0.0.0/8, 192.0.2.1, '::1']}\n")
    config = load_config(path)
    assert config.http.max_body_bytes == 131072
    assert [str(n) for n in config.http.trusted_proxies] == ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]
    assert config.auth.idle_timeout_s == 1800
    assert config.auth.login_throttle.pair_max_failures == 5
    assert config.auth.password.min_length == 12
