"""Start from a manual: a new profile from the template, and a sample site file for any profile. Pure (text in, text
out); ``lifeline profiles new`` and ``lifeline profiles sample`` write and print them.

Like Telegraf's ``sample.conf`` beside each plugin, every profile has a sample: generated from the profile itself, so
it cannot drift from it (the tests load the sample of every catalogue profile as a site file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from device_profiles.schema import ModbusPoint, MqttPoint, Profile

TEMPLATES = Path(__file__).parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SampleError(ValueError):
    """A profile that has no sample (HJ 212 stations and internal profiles are not configured as devices)."""


def new_profile(name: str, kind: str | None = None, title: str | None = None) -> str:
    """A Modbus profile to fill in from a manual (``templates/modbus.yaml.tmpl``), valid as it is."""
    if not _NAME.match(name):
        raise ValueError(f"profile name {name!r}: lowercase letters, digits and _, starting with a letter")
    kind = kind or name
    if not _NAME.match(kind):
        raise ValueError(f"kind {kind!r}: lowercase letters, digits and _, starting with a letter")
    text = (TEMPLATES / "modbus.yaml.tmpl").read_text(encoding="utf-8")
    values = {"NAME": name, "TITLE": json.dumps(title or name), "KIND": kind, "MEASUREMENT": name}
    # a function, not a replacement string: a title's backslashes are not read as escapes
    return re.sub(r"\b(NAME|TITLE|KIND|MEASUREMENT)\b", lambda m: values[m.group(1)], text)


def _yaml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON is YAML: quoted where it must be


def _device_id(profile: Profile) -> str:
    return profile.name.replace("_", "-") + "-1"


def site_sample(profile: Profile, profile_path: Path | None = None, site: str = "site1") -> str:
    """A site file with one device of ``profile``, every field a technician sets commented (from the profile)."""
    if profile.protocol not in ("modbus", "mqtt"):
        raise SampleError(f"profile {profile.name!r} is {profile.protocol}: its devices are not listed in a site file")
    lines = [
        f"# A site with one {profile.title or profile.name} (profile {profile.name}): copy the device into your site",
        "# file. Check it: lifeline edge --config SITE.yaml --plan  (docs/devices-from-manuals.md)",
        f"site: {site}",
        "broker: {host: 127.0.0.1, port: 1883}",
    ]
    if profile_path is not None:
        lines.append(f"profile_paths: [{_yaml(str(profile_path))}]")
    lines += ["devices:", f"  - id: {_device_id(profile)}", f"    profile: {profile.name}"]
    if profile.protocol == "modbus":
        lines += [
            "    host: 192.0.2.10          # the device's address, or its RS-485 gateway's",
            "    port: 502",
            "    unit_id: 1                # the manual's device address (从站地址 / slave id), 1-247",
            "    # timeout_s: 1.0          # behind a gateway with slow answers (300-800 ms): 2",
            f"    # poll_interval_s: {profile.poll_interval_s:g}",
        ]
    else:
        lines.append(f"    source_id: {_device_id(profile)}   # the id the vendor puts in its topic")
    lines += _tag_lines(profile)
    lines += _override_lines(profile)
    writable = [p.name for p in profile.points if isinstance(p, ModbusPoint) and p.writable]
    if writable:
        lines.append(f"    # writable points (set points): {', '.join(writable)}; see docs/devices-from-manuals.md")
    return "\n".join(lines) + "\n"


def _tag_lines(profile: Profile) -> list[str]:
    tags: dict[str, str] = {}
    notes: list[str] = []
    for key, spec in getattr(profile, "device_tags", {}).items():
        values = getattr(spec, "values", None)
        if getattr(spec, "required", False):
            tags[key] = values[0] if values else "CHANGE-ME"
        notes.append(f"{key}" + (f" ({' | '.join(values)})" if values else ""))
    for d in profile.derived.points if profile.derived else []:
        if d.o2_corrected is not None:
            notes.append(f"{d.o2_corrected.reference_tag} (the source's reference O2, %)")
    out = [f"    tags: {_yaml(tags)}"]
    if notes:
        out.append(f"    # tags this profile reads: {'; '.join(dict.fromkeys(notes))}")
    return out


def _override_lines(profile: Profile) -> list[str]:
    """The points' scale, offset, range, states and decimals, commented: a device may set its own."""
    out = ["    # points:                 # this device's own scale, offset, range, states, decimals (the profile's:)"]
    for p in profile.points:
        if not isinstance(p, ModbusPoint | MqttPoint):
            continue
        fields: dict[str, object] = {}
        if p.scale != 1.0:
            fields["scale"] = p.scale
        if p.offset != 0.0:
            fields["offset"] = p.offset
        if p.range is not None:
            fields["range"] = list(p.range)
        if p.decimals is not None:
            fields["decimals"] = p.decimals
        if p.states:
            fields["states"] = {str(k): v for k, v in p.states.items()}
        if fields:
            body = ", ".join(f"{k}: {_yaml(v)}" for k, v in fields.items())
            out.append(f"    #   {p.name}: {{{body}}}")
    return out if len(out) > 1 else []
