"""The API's own tables (SQLAlchemy Core): users, tokens, gate selections and commands.

They may share the alert store's database (its own metadata, table names prefixed ``api_``). Times are epoch ms.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
)

from alerts.db import ID_TYPE as _Id

metadata = MetaData()

users = Table(
    "api_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("areas", Text, nullable=False),  # JSON list
    Column("disabled", Boolean, nullable=False),
    Column("must_change_password", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

tokens = Table(
    "api_tokens",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # session | api
    Column("name", String(128), nullable=False),
    Column("username", String(64), ForeignKey("api_users.username", ondelete="CASCADE"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger),  # null: never
    Column("last_used_ms", BigInteger),
    Column("revoked", Boolean, nullable=False),
    Index("api_tokens_user", "username"),
)

selections = Table(
    "api_selections",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("device", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_by", String(64)),  # the command that consumed it (select-before-operate: one operation)
)

commands = Table(
    "api_commands",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("device", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target_pct", Text),  # JSON number or null (exactly as asked, for the idempotency check)
    Column("ttl_s", Text, nullable=False),
    Column("issued_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),  # expires_ms + the edge's timeout: timed_out after it
    Column("operator", String(64), nullable=False),
    Column("source", String(256), nullable=False),
    Column("state", String(32), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("interlock", String(32)),
    Column("reason", Text, nullable=False),
    Column("before", Text, nullable=False),  # JSON object: gate state the API saw when it published
    Column("after", Text, nullable=False),  # JSON object: the edge's final readback
    Column("steps", Text, nullable=False),  # JSON list of CommandResult objects, in arrival order
    Column("updated_ms", BigInteger, nullable=False),
    Column("point", String(64)),  # write: the point written
    Column("value", Text),  # write: JSON number or boolean, as asked
    Column("cancels", String(64)),  # cancel: the command never to execute
    Index("api_commands_gate", "site", "device", "final"),
    Index("api_commands_deadline", "final", "deadline_ms"),
)
