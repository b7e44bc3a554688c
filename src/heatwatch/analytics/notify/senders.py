"""The two channels: e-mail over SMTP (aiosmtplib) and signed webhooks (httpx). Each raises :class:`SendError`
with a short reason on any failure; the dispatcher retries and, at the end, dead-letters.

aiosmtplib rather than the standard library's smtplib in a thread: analytics runs on one asyncio loop, and
aiosmtplib speaks STARTTLS, implicit TLS and AUTH natively with a timeout on every step, so a slow mail server
holds one coroutine instead of a worker thread (and cannot outlive a stop request).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path

import aiosmtplib
import httpx

from heatwatch import __version__
from heatwatch.core.notifications import sign


class SendError(Exception):
    """A message could not be delivered this time (the reason is kept on the delivery)."""


class EmailSender:
    def __init__(self, host: str | None, port: int, security: str, sender: str, username: str | None = None,
                 password: str | None = None, ca_file: Path | None = None, timeout_s: float = 30.0) -> None:
        self.host, self.port, self.security = host, port, security
        self.sender, self.username, self.password = sender, username, password
        self.timeout_s = timeout_s
        self.tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        addr = parseaddr(sender)[1]
        self.domain = addr.rsplit("@", 1)[-1] if "@" in addr else "heatwatch.invalid"

    def message(self, to: str, subject: str, text: str, msg_id: str, thread: str | None = None,
                when: float | None = None) -> EmailMessage:
        m = EmailMessage()
        m["From"] = self.sender
        m["To"] = to
        m["Subject"] = subject
        m["Date"] = formatdate(when if when is not None else time.time(), usegmt=True)
        m["Message-ID"] = msg_id
        if thread is not None and thread != msg_id:
            # Reminders and ends reply to the alert's first message: mail clients show one thread per alert.
            m["In-Reply-To"] = thread
            m["References"] = thread
        m["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to an automaton
        m.set_content(text)
        return m

    def msgid(self, local: str) -> str:
        return f"<{local}@{self.domain}>"

    async def send(self, message: EmailMessage) -> None:
        if not self.host:
            raise SendError("no SMTP server configured (HEATWATCH_NOTIFY_SMTP_HOST)")
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, username=self.username, password=self.password,
                use_tls=self.security == "tls", start_tls=self.security == "starttls", tls_context=self.tls,
                timeout=self.timeout_s)
        except aiosmtplib.SMTPException as exc:
            raise SendError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}"[:500]) from None
        except (OSError, ssl.SSLError) as exc:
            raise SendError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}"[:500]) from None


class WebhookSender:
    """POSTs JSON with Standard Webhooks headers (core/notifications.py). ``wall`` is the real clock: the signed
    timestamp is what a receiver compares with its own clock, so it is never the dispatcher's scheduling clock."""

    def __init__(self, timeout_s: float = 10.0, wall: Callable[[], float] = time.time) -> None:
        self.timeout_s = timeout_s
        self.wall = wall
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a signed message goes where the subscription says, nowhere else.
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False,
                                             headers={"User-Agent": f"heatwatch/{__version__} (webhook)"})
        return self._client

    async def send(self, url: str, secret: str, msg_id: str, body: bytes) -> int:
        ts = int(self.wall())
        headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
                   "webhook-signature": sign(secret, msg_id, ts, body)}
        try:
            r = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendError(f"POST {url}: {type(exc).__name__}: {exc}"[:500]) from None
        if not 200 <= r.status_code < 300:
            raise SendError(f"POST {url}: HTTP {r.status_code} {r.text[:200]}")
        return r.status_code

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
