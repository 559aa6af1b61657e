"""The one way a Lifeline config holds a secret (a password, a token, a signing key).

A secret is written in a config in one of three ways, and the value itself never appears in a ``repr``, a log line
or a ``model_dump`` (it shows as ``***``):

    password: "s3cret"                      # inline (tests, throw-away set-ups)
    password: {file: /etc/lifeline/mqtt.pw}  # the first line of a file readable by its owner only (mode 0600)
    password: {env: LIFELINE_MQTT_PASSWORD}  # an environment variable

The legacy string form ``env:NAME`` is read as ``{env: NAME}``. ``reveal()`` reads the value when it is needed
(a file is read then, so a rotated password is picked up at the next connection).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class CredentialError(ValueError):
    """A secret that cannot be read: a missing or unreadable file, a file readable by others, an unset variable.
    The text names the file or the variable, never the value."""


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a secret file, which must be readable by its owner only (mode 0600 or stricter)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialError(f"{what} file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(
            f"{what} file {path} is readable by group or others (mode {stat.S_IMODE(mode):o}): chmod 600 it"
        )
    return text.splitlines()[0].strip() if text.strip() else ""


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` created with mode 0600 from the start (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)


class Secret(BaseModel):
    """A secret given inline, by file or by environment variable; shown as ``***`` everywhere but ``reveal()``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str | None = Field(default=None, repr=False)
    file: Path | None = Field(default=None, description="a file readable by its owner only (mode 0600)")
    env: str | None = Field(default=None, description="an environment variable")

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data.startswith("env:") and len(data) > 4:
                return {"env": data[4:]}
            return {"value": data}
        return data

    @model_validator(mode="after")
    def _one(self) -> Secret:
        given = [n for n in ("value", "file", "env") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"a secret is one of a value, {{file: PATH}} or {{env: NAME}} (got {given or 'none'})")
        return self

    @classmethod
    def inline(cls, value: str) -> Secret:
        return cls(value=value)

    def reveal(self, what: str = "secret") -> str:
        """The secret's value (reads the file or the environment now); ``what`` names it in an error."""
        if self.file is not None:
            return read_secret_file(self.file, what)
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise CredentialError(f"{what}: environment variable {self.env} is not set")
            return value
        return self.value or ""

    def where(self) -> str:
        """Where the secret comes from, for logs and errors (never the value)."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"environment variable {self.env}"
        return "inline"

    @model_serializer
    def _dump(self) -> dict[str, str] | str:
        if self.file is not None:
            return {"file": str(self.file)}
        if self.env is not None:
            return {"env": self.env}
        return "***"

    def __repr__(self) -> str:
        return f"Secret({self.where()})"

    __str__ = __repr__
