"""The password policy (GB/T 22239-2019 §8.1.4.1 a): authentication information with complexity requirements).
Pure: no I/O but reading the shipped list once.

Length first (NIST SP 800-63B §3.1.1.2 style: long passphrases over composition rules), then what guessers try
first: the common passwords of the shipped list (``common_passwords.txt``) and simple variations of them (digits or
symbols around a common word, letters swapped for look-alike digits), keyboard and alphabet runs, few distinct
characters, and the user's own name. A rule on character classes is there for assessors who ask for one (off by
default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

MAX_LENGTH = 256
MIN_LENGTH_FLOOR = 12  # PasswordPolicyConfig.min_length may be larger, never smaller
MIN_DISTINCT = 5
_ENDS = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_LOOK_ALIKES = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e", "$": "s", "5": "s", "7": "t"})
_RUNS = ("abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890")


def core(password: str) -> str:
    """The password in lower case without the digits and symbols around it: ``Password123456!`` -> ``password``."""
    return _ENDS.sub("", password.lower())


@cache
def shipped_blocklist() -> frozenset[str]:
    """The shipped list: cores of common passwords, and whole common passwords of 12 characters or more."""
    text = resources.files("api").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _in_run(text: str) -> bool:
    if len(text) < 4:
        return False
    for run in _RUNS:
        cyclic = run * (2 + len(text) // len(run))
        if text in cyclic or text in cyclic[::-1]:
            return True
    return False


def _classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 12
    min_character_classes: int = 0
    blocked: frozenset[str] = field(default_factory=shipped_blocklist)

    @classmethod
    def with_words(cls, min_length: int, min_character_classes: int, words: Iterable[str]) -> PasswordPolicy:
        """The shipped list plus ``words`` (site, company or product names), compared the same way."""
        extra = {core(w) or w.lower() for w in words if w.strip()}
        return cls(min_length, min_character_classes, shipped_blocklist() | extra)

    def problem(self, password: str, username: str) -> str | None:
        """Why ``password`` is refused for ``username``, or None. The reason never repeats the password."""
        found = self.refusal(password, username)
        return None if found is None else found.message

    def refusal(self, password: str, username: str) -> PasswordRefusal | None:
        """The rule ``password`` breaks for ``username`` (its code, parameters and English message), or None."""
        if len(password) < self.min_length:
            return _refused("too_short", f"a password needs at least {self.min_length} characters", min=self.min_length)
        if len(password) > MAX_LENGTH:
            return _refused("too_long", f"a password may have at most {MAX_LENGTH} characters", max=MAX_LENGTH)
        lower, stem = password.lower(), core(password)
        if lower == username.lower() or (stem and stem == core(username)):
            return _refused("user_name", "the password must not be the user name")
        if len(set(lower)) < MIN_DISTINCT:
            return _refused(
                "few_distinct", f"a password needs at least {MIN_DISTINCT} different characters", min=MIN_DISTINCT
            )
        if lower in self.blocked or (stem and (stem in self.blocked or stem.translate(_LOOK_ALIKES) in self.blocked)):
            return _refused("common", "this is a commonly used password (or a simple variation of one): choose another")
        if _in_run(lower) or _in_run(stem):
            return _refused("run", "a run of keyboard, alphabet or digit keys is easy to guess: choose another")
        if _classes(password) < self.min_character_classes:
            return _refused(
                "classes",
                f"a password needs {self.min_character_classes} of: lower case, upper case, digits, other characters",
                min=self.min_character_classes,
            )
        return None


@dataclass(frozen=True, slots=True)
class PasswordRefusal:
    """A broken rule: ``code`` (password.<rule>, translated by the console), ``params`` and the English message."""

    code: str
    message: str
    params: dict[str, object]


# Every code :meth:`PasswordPolicy.refusal` may give (the console's catalogue translates each).
RULE_CODES = tuple(
    f"password.{rule}" for rule in ("too_short", "too_long", "user_name", "few_distinct", "common", "run", "classes")
)


def _refused(rule: str, message: str, **params: object) -> PasswordRefusal:
    return PasswordRefusal(f"password.{rule}", message, params)
