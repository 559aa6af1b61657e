"""Signatures of commands and results: canonical bytes, Ed25519 signing and verification (no file I/O).

The format is part of the wire contract and is described in ``telemetry.commands``; the reasons are in decision
record 009. Key files are read and written by ``telemetry.keys``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TypeVar

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telemetry.commands import LATER_FIELDS, Command, CommandResult

__all__ = [
    "SignatureError",
    "SigningKey",
    "VerifyKey",
    "canonical_bytes",
    "command_digest",
    "key_id",
    "payload_digest",
    "sign",
    "verify",
]

M = TypeVar("M", Command, CommandResult)

# The first line of the signed bytes: a command's signature can never pass as a result's, nor the other way.
_CONTEXT: dict[type[Command | CommandResult], bytes] = {
    Command: b"lifeline/v1 command\n",
    CommandResult: b"lifeline/v1 command_result\n",
}
SIGNATURE_BYTES = 64  # RFC 8032 §5.1.6: R (32 bytes) || S (32 bytes)


class SignatureError(ValueError):
    """A message that is unsigned, signed with another key, or whose signature does not verify; the text says which."""


def key_id(public: Ed25519PublicKey) -> str:
    """The key id (fingerprint) of a public key: the first 16 bytes of SHA-256 of its raw 32 bytes, in hex."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key and the id of its public half."""

    private: Ed25519PrivateKey
    kid: str

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> SigningKey:
        return cls(private, key_id(private.public_key()))

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey.of(self.private.public_key())


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key and its id."""

    public: Ed25519PublicKey
    kid: str

    @classmethod
    def of(cls, public: Ed25519PublicKey) -> VerifyKey:
        return cls(public, key_id(public))


def _left_out(message: Command | CommandResult, *fields: str) -> set[str]:
    """``fields`` and the later fields of a command that are null (telemetry.commands: they are not signed then)."""
    if not isinstance(message, Command):
        return set(fields)
    return {*fields, *(f for f in LATER_FIELDS if getattr(message, f) is None)}


def canonical_bytes(message: Command | CommandResult) -> bytes:
    """What is signed: a context line, then the message without ``sig`` as compact JSON with sorted keys."""
    dump = message.model_dump(mode="json", exclude=_left_out(message, "sig"))
    return _CONTEXT[type(message)] + orjson.dumps(dump, option=orjson.OPT_SORT_KEYS)


def command_digest(command: Command) -> str:
    """SHA-256 (hex) of a command's content (canonical bytes without ``kid`` and ``sig``): what a result answers.

    Without the key id, so that the API can compute it again from its own record of the command."""
    dump = command.model_dump(mode="json", exclude=_left_out(command, "sig", "kid"))
    return hashlib.sha256(_CONTEXT[Command] + orjson.dumps(dump, option=orjson.OPT_SORT_KEYS)).hexdigest()


def payload_digest(payload: bytes) -> str:
    """SHA-256 (hex) of a raw payload that is no valid command, for the ``cmd_sha256`` of its rejection."""
    return hashlib.sha256(payload).hexdigest()


def sign(message: M, key: SigningKey) -> M:
    """A copy of ``message`` with ``kid`` and ``sig`` set by ``key`` (a signature it had is replaced)."""
    unsigned = message.model_copy(update={"kid": key.kid, "sig": None})
    signature = key.private.sign(canonical_bytes(unsigned))
    return unsigned.model_copy(update={"sig": base64.b64encode(signature).decode("ascii")})


def verify(message: Command | CommandResult, key: VerifyKey | None) -> None:
    """Return if ``message`` is signed by ``key``; else raise SignatureError saying why."""
    what = "command" if isinstance(message, Command) else "result"
    if key is None:
        raise SignatureError(f"no key to verify the {what} with is configured")
    if message.sig is None or message.kid is None:
        raise SignatureError(f"the {what} is not signed (no sig or kid)")
    if message.kid != key.kid:
        raise SignatureError(f"the {what} is signed with key {message.kid}, not with the expected key {key.kid}")
    try:
        signature = base64.b64decode(message.sig, validate=True)
    except binascii.Error as exc:
        raise SignatureError(f"the {what}'s sig is not base64: {exc}") from exc
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"the {what}'s sig has {len(signature)} bytes, not {SIGNATURE_BYTES}")
    try:
        key.public.verify(signature, canonical_bytes(message))
    except InvalidSignature:
        raise SignatureError(f"the {what}'s signature does not verify with key {key.kid}") from None
