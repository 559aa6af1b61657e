"""Register addresses as manuals write them, turned into the function and the 0-based address on the wire. Pure.

Notations (``address:`` of a point or a reserved range):

- a Modicon reference, 5 or 6 digits whose first digit names the table (Modicon PI-MBUS-300): ``0xxxx`` coils,
  ``1xxxx`` discrete inputs, ``3xxxx`` input registers, ``4xxxx`` holding registers; they count from 1, so
  ``40001`` is holding register 0 on the wire and ``300101`` input register 100. A reference sets the function;
  a point that gives ``function`` too must agree with it. An integer is taken for a reference only when the point
  gives no ``function`` (with a function, ``40001`` is the plain address 40001); a quoted one (``"40001"``) always
  is. Write 0xxxx coils quoted (``"00017"``): YAML reads a bare ``00017`` as the number 15 (octal), so a bare
  number below 10001 without a function is refused rather than guessed.
- hex, as the protocol address: ``"0x1000"`` or ``1000H`` (the ``H`` suffix of many drive and meter manuals); it is
  the wire address and is not shifted by ``address_base``. Quote the ``0x`` form: YAML reads a bare ``0x1000`` as
  the number 4096 (then a plain number: right with ``address_base: 0`` and a ``function``, one off with base 1).
- a plain number: the wire address, minus the profile's ``address_base`` (1 when the manual counts from 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# the table's digit -> device_profiles.schema.Function's value (a StrEnum: its members compare equal to these)
MODICON_TABLES: dict[str, str] = {"0": "coil", "1": "discrete_input", "3": "input_register", "4": "holding_register"}
MODICON_DIGIT = {function: digit for digit, function in MODICON_TABLES.items()}
_HEX = re.compile(r"^(?:0[xX]([0-9A-Fa-f]{1,4})|([0-9A-Fa-f]{1,4})[hH])$")
_DECIMAL = re.compile(r"^[0-9]{1,6}$")


class AddressError(ValueError):
    """An address that no notation reads, or one that names another function than the point's."""


@dataclass(frozen=True, slots=True)
class Resolved:
    function: str | None  # set by a Modicon reference; None: the point's own ``function``
    address: int  # 0-based, on the wire
    written: str  # the manual's notation, as given ("" for a plain number read with address_base 0)


def resolve(raw: int | str, function: str | None, base: int = 0) -> Resolved:
    """The wire address (and, for a Modicon reference, the function) of ``raw``; AddressError says why not."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise AddressError(f"address {raw!r} is neither a number nor text")
    text = str(raw).strip()
    if isinstance(raw, str) and (m := _HEX.match(text)):
        return Resolved(None, int(m.group(1) or m.group(2), 16), text)
    if not _DECIMAL.match(text):
        raise AddressError(
            f"address {raw!r} is not a number, a Modicon reference (40001, 300101) or hex (0x1000, 1000H)"
        )
    modicon = (isinstance(raw, str) and len(text) in (5, 6)) or (function is None and isinstance(raw, int))
    if modicon:
        return _modicon(raw, text, function)
    number = int(text)
    if number - base < 0:
        raise AddressError(f"address {number} is below {base}, where this profile's addresses start (address_base)")
    if number - base > 65535:
        raise AddressError(f"address {number} is past 65535 (no function given: use a Modicon reference or hex)")
    return Resolved(None, number - base, text if base else "")


def _modicon(raw: int | str, text: str, function: str | None) -> Resolved:
    if isinstance(raw, int):
        if raw < 10001:  # a coil's 0xxxx lost its zeros in YAML, or a bare 0x.. hex became a number: ambiguous
            raise AddressError(
                f'address {raw} without function: write a coil\'s reference quoted ("{raw:05d}"), or give '
                "'function' (a bare 0x1000 is read by YAML as the number 4096: quote it, \"0x1000\")"
            )
        number = raw
        text = f"{raw:05d}" if raw <= 49999 else f"{raw:06d}"
        digit, offset = (text[0], int(text[1:])) if number <= 465536 else ("", 0)
    else:
        digit, offset = text[0], int(text[1:])
    table = MODICON_TABLES.get(digit)
    if table is None or offset < 1 or offset > 65536 or (len(text) == 5 and offset > 9999):
        hint = " (or give 'function' and a plain address)" if function is None else ""
        raise AddressError(
            f"address {raw!r} is no Modicon reference: 0xxxx coils, 1xxxx discrete inputs, 3xxxx input registers, "
            f"4xxxx holding registers, counted from 1{hint}"
        )
    if function is not None and function != table:
        raise AddressError(f"address {text} is a {table} (Modicon {digit}xxxx), but the point says {function}")
    return Resolved(table, offset - 1, text)


def modicon(function: str, address: int) -> str:
    """The 5-digit (6 past 9999) Modicon reference of a wire address: holding register 0 is 40001."""
    n = address + 1
    return f"{MODICON_DIGIT[function]}{n:04d}" if n <= 9999 else f"{MODICON_DIGIT[function]}{n:05d}"
