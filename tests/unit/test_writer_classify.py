"""How the bridge reads InfluxDB's answers (after Telegraf): drop-and-split, split, or retry."""

from __future__ import annotations

import pytest

from storage.writer import Rejected, Retry, TooLarge, classify


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "kind", "reason", "wait"),
    [
        pytest.param(204, "", None, None, None, None, id="accepted"),
        pytest.param(
            400,
            '{"error":"partial write: field type conflict: input field \\"ph\\" dropped=1"}',
            None,
            Rejected,
            'partial write: field type conflict: input field "ph" dropped=1',
            None,
            id="type-conflict-refused",
        ),
        pytest.param(
            400,
            '{"error":"unable to parse \'x\': missing fields"}',
            None,
            Rejected,
            "unable to parse 'x': missing fields",
            None,
            id="parse-error-refused",
        ),
        pytest.param(
            422,
            '{"code":"unprocessable entity","message":"points beyond retention"}',
            None,
            Rejected,
            "points beyond retention",
            None,
            id="2x-unprocessable-refused",
        ),
        pytest.param(
            413,
            '{"error":"Request Entity Too Large"}',
            None,
            TooLarge,
            "Request Entity Too Large",
            None,
            id="too-large-split",
        ),
        pytest.param(429, "slow down", "7", Retry, "slow down", 7.0, id="429-honours-retry-after"),
        pytest.param(503, "<html>busy</html>", None, Retry, "<html>busy</html>", None, id="503-retry"),
        pytest.param(500, '{"error":"timeout"}', "x", Retry, "timeout", None, id="bad-retry-after-ignored"),
        pytest.param(
            404,
            '{"error":"database not found: \\"lifeline\\""}',
            None,
            Retry,
            'database not found: "lifeline"',
            None,
            id="missing-database-retry",
        ),
        pytest.param(
            401, '{"error":"authorization failed"}', None, Retry, "authorization failed", None, id="credentials-retry"
        ),
    ],
)
def test_classify(
    status: int, body: str, retry_after: str | None, kind: type | None, reason: str | None, wait: float | None
) -> None:
    problem = classify(status, body, retry_after)
    if kind is None:
        assert problem is None
        return
    assert type(problem) is kind
    assert problem is not None
    assert problem.reason == reason
    assert problem.status == status
    if isinstance(problem, Retry):
        assert problem.retry_after_s == wait
