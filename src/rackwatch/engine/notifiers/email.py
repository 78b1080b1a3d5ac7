"""Email by SMTP (stdlib smtplib, in a worker thread so the loop never blocks).

`security`: "starttls" (default: plain connection upgraded with STARTTLS, port 587), "ssl"
(TLS from the first byte, port 465) or "none" (a trusted relay on localhost only). The server
certificate is verified against the system's CAs unless an `ssl_context` is given. The password
is used for LOGIN and never appears in errors or logs.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Literal

from rackwatch.engine.notifiers.base import Notification, NotificationFailed

Security = Literal["starttls", "ssl", "none"]


class EmailNotifier:
    def __init__(
        self,
        host: str,
        *,
        from_addr: str,
        to_addrs: Sequence[str],
        port: int | None = None,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        subject_prefix: str = "[rackwatch]",
        name: str = "email",
    ) -> None:
        if not to_addrs:
            raise ValueError(f"email notifier {name!r}: give at least one recipient (to_addrs)")
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"email security must be starttls, ssl or none, not {security!r}")
        if (username is None) != (password is None):
            raise ValueError(f"email notifier {name!r}: give both username and password, or none")
        self.name = name
        self.host = host
        self.port = port if port is not None else {"ssl": 465, "starttls": 587}.get(security, 25)
        self.security: Security = security
        self.from_addr = from_addr
        self.to_addrs = list(to_addrs)
        self.timeout_s = timeout_s
        self.subject_prefix = subject_prefix
        self._username = username
        self._password = password
        self._ssl_context = ssl_context

    def compose(self, notification: Notification) -> EmailMessage:
        n = notification
        msg = EmailMessage()
        msg["Subject"] = f"{self.subject_prefix} {n.title}".strip()
        msg["From"] = self.from_addr
        msg["To"] = ", ".join(self.to_addrs)
        lines = [
            n.message,
            "",
            f"entity:    {n.entity}",
            f"rule:      {n.rule}",
            f"metric:    {n.metric}",
            f"value:     {n.value:.6g} {n.unit}".rstrip(),
            f"threshold: {n.threshold:.6g} {n.unit}".rstrip(),
            f"level:     {n.level.name}",
            f"status:    {'resolved' if n.is_resolved else 'firing'}",
            f"time:      {n.timestamp}",
            f"alert id:  {n.alert_id}",
        ]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    async def send(self, notification: Notification) -> None:
        await asyncio.to_thread(self._send, self.compose(notification))

    def _send(self, msg: EmailMessage) -> None:
        where = f"SMTP server {self.host}:{self.port} ({self.security})"
        try:
            context = self._ssl_context or ssl.create_default_context()
            smtp: smtplib.SMTP
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotificationFailed(
                f"{where} refused the login of {self._username!r} ({exc.smtp_code}): check the "
                "username and password"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotificationFailed(
                f"{where} does not support what was asked ({exc}): try security = 'ssl' or "
                "check whether it requires a login"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationFailed(
                f"{where} did not take the email: {exc}; check host, port and security"
            ) from exc

    async def close(self) -> None:
        return None
