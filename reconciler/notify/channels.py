"""Delivery channels: email over SMTP and a webhook POST signed with HMAC-SHA256.

Each channel turns a failure into the error kind the notifier acts on: a passing fault
(connection refused, timeout, SMTP 4xx, HTTP 408/429/5xx) is :class:`RetriableError`; a
permanent refusal (SMTP 5xx, any other HTTP 4xx) is :class:`FatalError` and dead-letters
the notification at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from reconciler.errors import FatalError, RetriableError
from reconciler.notify.render import RenderedDigest

SIGNATURE_HEADER = "X-Reconciler-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` (see docs/notifications.md)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float | None = None,
           tolerance_seconds: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def digest_body(notification_id: str, digest: dict[str, Any]) -> bytes:
    return json.dumps({"type": "org.reconciler.employer.digest",
                       "notification_id": notification_id, **digest},
                      sort_keys=True, ensure_ascii=False).encode()


def post_webhook(url: str, secret: str, notification_id: str, digest: dict[str, Any],
                 timeout: float) -> None:
    body = digest_body(notification_id, digest)
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: sign(secret, int(time.time()), body),
               "X-Reconciler-Delivery": notification_id}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout,
                              follow_redirects=False)
    except httpx.TransportError as exc:
        raise RetriableError(f"webhook {url} unreachable: {exc!r}") from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"webhook {url} answered HTTP {status}"
    if status in (408, 425, 429) or status >= 500:
        raise RetriableError(message)
    raise FatalError(message + "; the employer's endpoint refuses the digest — fix the "
                     "webhook_url in the employers feed or the receiver")


def build_email(sender: str, recipient: str, notification_id: str,
                rendered: RenderedDigest, language: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(usegmt=True)
    # one Message-ID per notification: a resent digest is recognisably the same one
    message["Message-ID"] = f"<{notification_id}@reconciler>"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    message["Content-Language"] = language  # after the body: set_content drops Content-*
    return message


def send_email(smtp_url: str, message: EmailMessage, timeout: float) -> None:
    """Send over ``smtp://host:port`` (``?starttls=true`` to upgrade) or ``smtps://``;
    ``user:password@`` in the URL logs in (the URL lives in the environment)."""
    url = urlsplit(smtp_url)
    host = url.hostname or "127.0.0.1"
    secure = url.scheme == "smtps"
    port = url.port or (465 if secure else 25)
    starttls = parse_qs(url.query).get("starttls", ["false"])[0].lower() in ("1", "true")
    try:
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
            if secure else smtplib.SMTP(host, port, timeout=timeout))
        with client:
            if starttls:
                client.starttls(context=ssl.create_default_context())
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            refused = client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise _smtp_error(min(codes) if codes else None,
                          f"SMTP refused the recipient {message['To']}") from exc
    except smtplib.SMTPResponseException as exc:
        raise _smtp_error(exc.smtp_code, f"SMTP answered {exc.smtp_code} "
                          f"{exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise RetriableError(f"SMTP server {host}:{port} unavailable: {exc!r}") from exc
    if refused:
        raise FatalError(f"SMTP refused {sorted(refused)}")


def _smtp_error(code: int | None, message: str) -> RetriableError | FatalError:
    if code is not None and code >= 500:
        return FatalError(message + "; fix the employer's email in the employers feed")
    return RetriableError(message)
