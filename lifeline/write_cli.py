"""``lifeline write``: write a set point through the API, as the console would, and wait for how it ended.

The CLI holds no key and talks to no broker: it asks the API, which checks the user's role and areas and the point's
bounds, signs the command, audits it and waits for the edge's read-back (docs/api.md, Set points). A machine token
(``LIFELINE_TOKEN``) or a user name and password (``--user``; the password from ``LIFELINE_PASSWORD`` or asked for).

    lifeline write plant-7 gas-ctl alarm_l1 25 --api https://127.0.0.1:8080 --user op-li
    lifeline write plant-7 drive-3 freq_setpoint 37.5 --select
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import time
from pathlib import Path
from typing import Any

from lifeline._run import Subparsers

TOKEN_ENV = "LIFELINE_TOKEN"
PASSWORD_ENV = "LIFELINE_PASSWORD"
EXIT_REFUSED, EXIT_FAILED, EXIT_UNKNOWN = 2, 1, 3


def add_parsers(sub: Subparsers) -> None:
    p = sub.add_parser("write", help="write a set point (a writable point of a device) through the API")
    p.add_argument("site")
    p.add_argument("device")
    p.add_argument("point", help="the point's name in the device's profile")
    p.add_argument("value", help="a number in the point's unit, or true/false for a coil")
    p.add_argument("--api", default="http://127.0.0.1:8080", help="the API's base URL (default: the local stack's)")
    p.add_argument("--user", default=None, help=f"sign in as this user (else the token in {TOKEN_ENV})")
    p.add_argument("--ca", type=Path, default=None, help="CA certificate (PEM) the API's certificate is checked with")
    p.add_argument("--select", action="store_true", help="select the device first (when the API asks for it)")
    p.add_argument("--id", default=None, help="the command's id (idempotency key); default: the API makes one")
    p.add_argument("--ttl", type=float, default=None, help="time to live in s (default: the API's)")
    p.add_argument("--timeout", type=float, default=60.0, help="how long to wait for the final result (s)")
    p.set_defaults(func=run)


def parse_value(text: str) -> float | bool:
    """``true``/``false`` (a coil) or a finite number; ValueError otherwise."""
    low = text.strip().lower()
    if low in ("true", "on"):
        return True
    if low in ("false", "off"):
        return False
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def run(args: argparse.Namespace) -> int:
    import httpx

    try:
        value = parse_value(args.value)
    except ValueError as exc:
        raise SystemExit(f"value: {exc}") from exc
    verify: Any = str(args.ca) if args.ca is not None else True
    with httpx.Client(base_url=args.api.rstrip("/"), verify=verify, timeout=15.0) as client:
        client.headers["Authorization"] = f"Bearer {_token(client, args.user)}"
        body: dict[str, Any] = {"value": value}
        if args.id:
            body["id"] = args.id
        if args.ttl is not None:
            body["ttl_s"] = args.ttl
        if args.select:
            r = client.post(f"/api/devices/{args.site}/{args.device}/select")
            if r.status_code != 201:
                return _refused(r)
            body["selection"] = r.json()["selection"]
        r = client.post(f"/api/devices/{args.site}/{args.device}/points/{args.point}/write", json=body)
        if r.status_code not in (200, 201):
            return _refused(r)
        command = r.json()
        print(f"command {command['id']}: {command['state']}")
        return _follow(client, command, args.timeout)


def _token(client: Any, user: str | None) -> str:
    if user is None:
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise SystemExit(f"give --user, or a machine token in {TOKEN_ENV}")
        return token
    password = os.environ.get(PASSWORD_ENV) or getpass.getpass(f"password of {user}: ")
    r = client.post("/api/auth/login", json={"username": user, "password": password})
    if r.status_code != 200:
        raise SystemExit(f"sign-in refused ({r.status_code}): {_reason(r)}")
    return str(r.json()["token"])


def _follow(client: Any, command: dict[str, Any], timeout_s: float) -> int:
    """Print each step as it arrives; the exit code says how the command ended."""
    deadline, shown = time.monotonic() + timeout_s, 0
    while True:
        for step in command.get("steps", [])[shown:]:
            extra = {k: step[k] for k in ("interlock", "reason", "before", "after") if step.get(k)}
            print(f"  {step['state']}" + (f" {extra}" if extra else ""))
        shown = len(command.get("steps", []))
        if command.get("final"):
            break
        if time.monotonic() >= deadline:
            print(f"no final result within {timeout_s:g} s (state {command['state']})")
            return EXIT_UNKNOWN
        time.sleep(0.5)
        command = client.get(f"/api/commands/{command['id']}").json()
    state = command["state"]
    print(f"{state}" + (f": {command['reason']}" if command.get("reason") else ""))
    if state == "completed":
        return 0
    return EXIT_REFUSED if state == "rejected" else EXIT_FAILED


def _reason(r: Any) -> str:
    try:
        detail = r.json().get("detail")
    except ValueError:
        return str(r.text)[:200]
    if isinstance(detail, dict):
        return str(detail.get("reason") or detail.get("message") or detail)
    return str(detail)


def _refused(r: Any) -> int:
    print(f"refused ({r.status_code}): {_reason(r)}")
    return EXIT_REFUSED
