"""The password policy (GB/T 22239-2019 §8.1.4.1 a)): one row a password, with the reason it is refused."""

from __future__ import annotations

import pytest

from api.password_policy import PasswordPolicy, core, shipped_blocklist

POLICY = PasswordPolicy()

CASES = [
    # (password, user name, expected reason fragment or None for accepted)
    ("correct-horse-battery", "viewer", None),
    ("Lantern Orchard 7 Pebble", "viewer", None),
    ("zhu-jiang-bridge-north-2", "op-north", None),
    ("short-pw", "viewer", "at least 12 characters"),
    ("x" * 257, "viewer", "at most 256"),
    ("password123456", "viewer", "commonly used"),
    ("Password123456!", "viewer", "commonly used"),
    ("P@ssw0rd2024!!", "viewer", "commonly used"),  # look-alike digits
    ("qwertyuiop123", "viewer", "commonly used"),
    ("woaini1314520", "viewer", "commonly used"),  # from the Chinese list
    ("1233211234567", "viewer", "commonly used"),  # a whole common password of 13 characters
    ("lifeline2026!!", "viewer", "commonly used"),  # the product's name
    ("123456789012", "viewer", "run of keyboard"),
    ("zyxwvutsrqpo", "viewer", "run of keyboard"),
    ("aaaaaaaaaaaa", "viewer", "different characters"),
    ("abababababab", "viewer", "different characters"),
    ("operator-north", "operator-north", "user name"),
    ("Operator-North", "operator-north", "user name"),
    ("operator-north2026!", "operator-north", "user name"),
]


@pytest.mark.parametrize(("password", "username", "reason"), CASES, ids=[f"{c[0][:24]}-{c[2] or 'ok'}" for c in CASES])
def test_policy(password: str, username: str, reason: str | None) -> None:
    problem = POLICY.problem(password, username)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None
        assert reason in problem
        assert password not in problem  # a reason never repeats the password


@pytest.mark.parametrize(
    ("password", "expected"),
    [("Password123456!", "password"), ("!!dragon??", "dragon"), ("123456", ""), ("a-b", "a-b")],
)
def test_core_strips_digits_and_symbols_around(password: str, expected: str) -> None:
    assert core(password) == expected


def test_configured_length_words_and_classes() -> None:
    policy = PasswordPolicy.with_words(16, 3, ["Huaihe"])
    assert "at least 16" in (policy.problem("correct-horse-b", "viewer") or "")
    assert "commonly used" in (policy.problem("Huaihe-2026-!!!!!", "viewer") or "")
    assert "3 of" in (policy.problem("correct-horse-battery", "viewer") or "")
    assert policy.problem("Correct-Horse-Battery", "viewer") is None


def test_the_shipped_list_is_lower_case_and_holds_both_lists() -> None:
    words = shipped_blocklist()
    assert len(words) > 1000
    assert all(w == w.lower() and w.strip() == w for w in words)
    assert {"password", "qwerty", "woaini", "lifeline"} <= words
