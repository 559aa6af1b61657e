"""Email channel: a plain-text mail through SMTP (stdlib ``smtplib`` in a worker thread, so the loop never waits
on the socket). Subject = the message's title; body = its text and one line per field."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from alerts.notify.config import EmailConfig
from alerts.notify.errors import DeliveryError
from alerts.notify.message import Message, plain_text


def target(cfg: EmailConfig) -> str:
    return ", ".join(cfg.to)


def build(cfg: EmailConfig, msg: Message, now_s: float, timezone: str) -> EmailMessage:
    """The mail: RFC 5322 headers (Date, Message-ID), UTF-8 subject and body."""
    mail = EmailMessage()
    mail["Subject"] = msg.title
    mail["From"] = cfg.sender
    mail["To"] = ", ".join(cfg.to)
    mail["Date"] = format_datetime(datetime.fromtimestamp(now_s, ZoneInfo(timezone)))
    # The sender's domain, not socket.getfqdn(): that may wait on a DNS look-up.
    mail["Message-ID"] = make_msgid(idstring="lifeline", domain=cfg.sender.rpartition("@")[2])
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no vacation auto-replies to an alert mail
    mail["X-Lifeline-Notification"] = msg.id
    mail.set_content(plain_text(msg, timezone), charset="utf-8", cte="quoted-printable")
    return mail


def _send(cfg: EmailConfig, mail: EmailMessage) -> None:
    """Blocking: connect, optionally STARTTLS and log in, send. Raises smtplib/ssl/OS errors unclassified."""
    with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
        if cfg.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if cfg.username is not None and cfg.password is not None:
            smtp.login(cfg.username, cfg.password.reveal("SMTP password"))
        refused = smtp.send_message(mail)
    if refused:
        # The others have the mail: trying again would send it to them twice.
        detail = "; ".join(f"{addr}: {code} {err.decode(errors='replace')}" for addr, (code, err) in refused.items())
        raise DeliveryError(f"some recipients refused: {detail}", retryable=False)


def _classify(exc: Exception, where: str) -> DeliveryError:
    """SMTP reply codes (RFC 5321 §4.2.1): 4yz is transient, 5yz permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{a}: {c} {e.decode(errors='replace')}" for a, (c, e) in exc.recipients.items())
        return DeliveryError(f"{where} refused every recipient: {detail}", retryable=all(400 <= c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        reason = f"{where} answered {exc.smtp_code} {err}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return DeliveryError(f"login refused: {reason}", retryable=400 <= exc.smtp_code < 500)
        return DeliveryError(reason, retryable=400 <= exc.smtp_code < 500 or exc.smtp_code < 0)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"{where} does not support what the config asks: {exc}", retryable=False)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"{where} closed the connection: {exc}", retryable=True)
    if isinstance(exc, ssl.SSLError):  # before OSError: a certificate or TLS mismatch needs a config change
        return DeliveryError(f"TLS with {where} failed: {exc}", retryable=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"time-out talking to {where}", retryable=True)
    return DeliveryError(f"cannot reach {where}: {exc or type(exc).__name__}", retryable=True)


async def deliver(cfg: EmailConfig, msg: Message, now_s: float, timezone: str) -> None:
    """Send the mail; raise DeliveryError (retryable for connection problems, time-outs and 4yz replies)."""
    mail = build(cfg, msg, now_s, timezone)
    try:
        await asyncio.to_thread(_send, cfg, mail)
    except DeliveryError:
        raise
    except (smtplib.SMTPException, OSError) as exc:  # SMTPException is an OSError; _classify tells them apart
        raise _classify(exc, f"SMTP server {cfg.host}:{cfg.port}") from exc
