"""Remote commands to a device and their results (contract version 1).

The API publishes a :class:`Command` on ``lifeline/v1/{site}/{device}/cmd/{id}`` (QoS 1, not retained); the edge agent
that owns the device answers with :class:`CommandResult` messages on ``.../cmd_result/{id}`` (QoS 1, the final one
retained so that a late reader still sees how the command ended).

Rules both sides keep:

- ``id`` is the idempotency key. A command whose id the edge has seen before is not executed again: the edge
  publishes the result it already has (``repeat: true``).
- ``expires_ms`` is absolute (epoch ms, set by the API from its time-to-live). The edge refuses a command it
  receives at or after ``expires_ms`` with ``rejected`` / interlock ``stale``.
- Receipt: the edge answers ``received`` as soon as a command under a new id verifies (signature, site, topic),
  before any other check or execution. The API waits a few seconds for it (``gates.receipt_timeout_s``, 5 s); without
  it the command ends ``not_delivered`` at the API (never shown as merely published) and the API sends a ``cancel``
  naming it, so that a delivery that comes later is not executed.
- Delivery window: the edge refuses a command it first sees more than its delivery window (edge config
  ``command_delivery_window_s``, 5 s: at most the API's receipt time-out) after ``issued_ms`` with ``rejected`` /
  interlock ``late``, whatever its time to live: a command held back by someone between the API and the edge is not
  run late. A command already seen is a
  repeat (below), not late.
- ``cancel`` (``cancels``: a command id of the same device): the edge remembers the cancelled id as ``rejected``
  (reason "cancelled by the API") if it has not seen it, so that the id is never executed; a command already seen is
  left as it is (the cancel's result says so). A cancel skips every interlock, never the signature.
- ``write`` (``point``, ``value``): a set point, written to a writable point of a device whose ``control`` allows it,
  checked against the point's bounds (range, step) and read back within its tolerance; ``before`` and ``after``
  hold the point's value read before and after the write.
- One command at a time per device: a second command while one runs is ``rejected`` / ``busy``, except ``stop``,
  which always goes through and ends the running one (that one ends ``failed`` with reason ``stopped by <id>``).
- A repeated id's re-published result is not retained (the original final result stays the retained one).
- Result states in order: ``received``, then ``accepted`` then ``progress`` (any number) then exactly one final state
  of ``completed``, ``rejected``, ``failed`` or ``timed_out``. ``rejected`` may come without ``accepted``, and without
  ``received`` for a command that did not verify. ``received`` is neither retained nor remembered.

Signatures (``telemetry.signing``; decision record 009). Every site has two Ed25519 key pairs (RFC 8032): the
*control* key, whose private half only the API holds, signs commands; the *site* key, whose private half only that
site's edge agent holds, signs results. A signed message carries ``kid`` (the signer's key id: the first 16 bytes,
in hex, of the SHA-256 of the raw 32-byte public key) and ``sig`` (the signature, standard base64 with padding, of
the message's canonical bytes). The canonical bytes of a message are::

    b"lifeline/v1 command\n" (or b"lifeline/v1 command_result\n") + orjson.dumps(dump, option=OPT_SORT_KEYS)

where ``dump`` is ``model_dump(mode="json")`` of the parsed message without ``sig`` (every field, defaults and
nulls included, ``kid`` included; keys sorted at every level; compact UTF-8), except the fields added after the
first release of version 1 (:data:`LATER_FIELDS`: ``point``, ``value``, ``cancels``), which are left out while they
are null, so that the bytes of a gate command are those of the first release. They are computed from the parsed
model, never from the bytes on the wire, so key order and spacing on the wire do not matter; a new field changes
the bytes and needs a new contract version. The first line keeps a command's signature from ever passing as a
result's.

- The edge executes only a command signed with its site's control key, for its own site, not expired, under an id
  it has not seen (or the very command it saw: then the repeat above). Anything else is answered ``rejected``
  with interlock ``signature``, ``wrong_site``, ``stale`` or ``repeated``; an answer to a command that did not
  verify is neither retained nor remembered, so it can neither burn an id nor replace a retained result.
- Every result names in ``cmd_sha256`` the command it answers (``telemetry.signing.command_digest``: the SHA-256
  of the command's canonical content without ``kid`` and ``sig``; for a payload that is no command, of the raw
  payload). The API records a result only if it verifies with the site key and answers the command the API sent.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from telemetry.models import Id, PointName, Value

KID_PATTERN = r"^[0-9a-f]{32}$"
SIG_MAX = 100  # an Ed25519 signature is 64 bytes: 88 characters of base64


class Action(StrEnum):
    OPEN = "open"  # drive to fully open
    CLOSE = "close"  # drive to fully closed
    STOP = "stop"  # stop the hoist now; never refused by an interlock
    SET_OPENING = "set_opening"  # drive to ``target_pct`` of the gate's full opening
    WRITE = "write"  # write ``value`` to the writable point ``point`` (a set point), read it back
    CANCEL = "cancel"  # never execute the command ``cancels`` (the API had no receipt of it in time)


GATE_ACTIONS = frozenset({Action.OPEN, Action.CLOSE, Action.STOP, Action.SET_OPENING})


class ResultState(StrEnum):
    RECEIVED = "received"  # the edge has the command and it verified; nothing checked or done yet
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


FINAL_STATES = frozenset({ResultState.COMPLETED, ResultState.REJECTED, ResultState.FAILED, ResultState.TIMED_OUT})


class Interlock(StrEnum):
    """Why a command was refused (by the API or the edge): one name per check."""

    LOCAL_MODE = "local_mode"  # the selector is not in remote
    GATE_FAULT = "gate_fault"  # fault code set, emergency stop, motor overload trip
    OUT_OF_LIMITS = "out_of_limits"  # target outside the gate's configured range
    LEVEL_DIFFERENCE = "level_difference"  # head across the gate above the safe limit for this movement
    BUSY = "busy"  # another command runs on this gate
    STALE = "stale"  # received at or after expires_ms
    NO_DATA = "no_data"  # the edge cannot read the gate's state to check the interlocks
    UNKNOWN_DEVICE = "unknown_device"  # not a controllable device of this agent
    ROLE = "role"  # API: the user's role may not operate gates
    AREA = "area"  # API: the gate is outside the user's areas
    SELECTION = "selection"  # API: no valid selection (select-before-operate) for this gate and user
    REPEATED = "repeated"  # API or edge: the id was used before for a different command
    SIGNATURE = "signature"  # unsigned, signed with another key, or a signature that does not verify; or no key
    WRONG_SITE = "wrong_site"  # edge: a signed command for another site arrived on this site's topic
    LATE = "late"  # edge: first seen later than the delivery window after issued_ms (held back on the way)
    NOT_WRITABLE = "not_writable"  # a write to a point that is not writable, or not open to remote writes


# Refusals at the edge of a command the API did not send as such: the API audits and alerts each once.
FORGED = frozenset({Interlock.SIGNATURE, Interlock.WRONG_SITE, Interlock.REPEATED})
# Fields of Command added after the first release of contract version 1: not in the signed bytes while null.
LATER_FIELDS = frozenset({"point", "value", "cancels"})


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: Id
    site: Id
    device: Id
    action: Action
    target_pct: float | None = Field(None, ge=0, le=100, description="set_opening only: percent of full opening")
    point: PointName | None = Field(None, description="write only: the point written")
    value: float | bool | None = Field(
        None, allow_inf_nan=False, description="write only: the value, engineering units"
    )
    cancels: Id | None = Field(None, description="cancel only: the id of the command never to execute")
    issued_ms: int = Field(ge=0)
    expires_ms: int = Field(ge=0, description="absolute; the edge refuses the command at or after this time")
    operator: str = Field(min_length=1, max_length=128, description="who asked (user name), for the audit")
    source: str = Field("", max_length=256, description="from where (client address), for the audit")
    kid: str | None = Field(None, pattern=KID_PATTERN, description="id of the control key that signed this")
    sig: str | None = Field(None, max_length=SIG_MAX, description="Ed25519 signature of the canonical bytes, base64")

    @model_validator(mode="after")
    def _target(self) -> Command:
        if self.action is Action.SET_OPENING and self.target_pct is None:
            raise ValueError("set_opening needs target_pct")
        if self.action is not Action.SET_OPENING and self.target_pct is not None:
            raise ValueError(f"{self.action.value} takes no target_pct")
        write = self.action is Action.WRITE
        if write != (self.point is not None) or write != (self.value is not None):
            raise ValueError("write needs point and value, and only write takes them")
        if (self.action is Action.CANCEL) != (self.cancels is not None):
            raise ValueError("cancel needs cancels (a command id), and only cancel takes it")
        if self.expires_ms <= self.issued_ms:
            raise ValueError("expires_ms must be after issued_ms")
        return self


class CommandResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: Id
    site: Id
    device: Id
    state: ResultState
    ts: int = Field(ge=0, description="when the edge reached this state, ms since the epoch")
    interlock: Interlock | None = Field(None, description="rejected only: which check refused")
    reason: str = ""
    before: dict[str, Value] = Field(default_factory=dict, description="gate state read before moving")
    after: dict[str, Value] = Field(default_factory=dict, description="gate state read at the end (final states)")
    opening_m: float | None = Field(None, description="opening read back at this step")
    target_m: float | None = None
    repeat: bool = Field(False, description="the id was seen before: this is the result it already had")
    cmd_sha256: str = Field("", pattern=r"^([0-9a-f]{64})?$", description="digest of the command this answers")
    kid: str | None = Field(None, pattern=KID_PATTERN, description="id of the site key that signed this")
    sig: str | None = Field(None, max_length=SIG_MAX, description="Ed25519 signature of the canonical bytes, base64")

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES
