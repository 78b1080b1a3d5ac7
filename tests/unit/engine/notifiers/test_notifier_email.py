"""EmailNotifier against a real SMTP server (aiosmtpd on 127.0.0.1): plain relay, STARTTLS
with login, implicit TLS, and the errors people see."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from notifier_support import Certificate, free_port

from rackwatch.engine.notifiers import Notification, NotificationFailed
from rackwatch.engine.notifiers.email import EmailNotifier

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def _authenticator(*args: Any) -> Any:
    """aiosmtpd's (server, session, envelope, mechanism, auth_data) hook."""
    auth_data = args[-1]
    ok = auth_data.login == b"rackwatch" and auth_data.password == b"s3cret"
    return aiosmtpd_smtp.AuthResult(success=ok)


@contextmanager
def smtp_server(**kwargs: Any) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        mailbox, hostname="127.0.0.1", port=port, server_hostname="127.0.0.1", **kwargs
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_plain_relay_gets_a_readable_email(notification: Notification) -> None:
    with smtp_server() as (mailbox, port):
        notifier = EmailNotifier(
            "127.0.0.1",
            port=port,
            security="none",
            from_addr="rackwatch@example.com",
            to_addrs=["ops@example.com", "admin@example.com"],
        )
        asyncio.run(notifier.send(notification))
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "rackwatch@example.com"
    assert recipients == ["ops@example.com", "admin@example.com"]
    assert message["Subject"] == "[rackwatch] [CRITICAL] c01/r01/s03/fan1: fan-stopped"
    body = message.get_content()
    assert "fan_rpm" in body and "threshold: 100 rpm" in body and notification.alert_id in body


def test_starttls_with_login(notification: Notification, certificate: Certificate) -> None:
    with smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    ) as (mailbox, port):
        notifier = EmailNotifier(
            "127.0.0.1",
            port=port,
            security="starttls",
            username="rackwatch",
            password="s3cret",
            from_addr="rackwatch@example.com",
            to_addrs=["ops@example.com"],
            ssl_context=certificate.client_context(),
        )
        asyncio.run(notifier.send(notification))
        assert len(mailbox.messages) == 1


def test_implicit_tls(notification: Notification, certificate: Certificate) -> None:
    with smtp_server(ssl_context=certificate.server_context()) as (mailbox, port):
        notifier = EmailNotifier(
            "127.0.0.1",
            port=port,
            security="ssl",
            from_addr="rackwatch@example.com",
            to_addrs=["ops@example.com"],
            ssl_context=certificate.client_context(),
        )
        asyncio.run(notifier.send(notification))
    assert len(mailbox.messages) == 1


def test_untrusted_certificate_is_refused(
    notification: Notification, certificate: Certificate
) -> None:
    with smtp_server(tls_context=certificate.server_context()) as (mailbox, port):
        notifier = EmailNotifier(
            "127.0.0.1", port=port, from_addr="a@example.com", to_addrs=["b@example.com"]
        )  # the system CAs do not know the test certificate
        with pytest.raises(NotificationFailed, match="check host, port and security"):
            asyncio.run(notifier.send(notification))
    assert mailbox.messages == []


def test_no_server_is_a_clear_error(notification: Notification) -> None:
    notifier = EmailNotifier(
        "127.0.0.1",
        port=free_port(),
        security="none",
        from_addr="a@example.com",
        to_addrs=["b@example.com"],
        timeout_s=2,
    )
    with pytest.raises(NotificationFailed, match=r"SMTP server 127\.0\.0\.1:\d+ \(none\)"):
        asyncio.run(notifier.send(notification))


def test_bad_configuration_is_refused_early() -> None:
    with pytest.raises(ValueError, match="recipient"):
        EmailNotifier("h", from_addr="a@example.com", to_addrs=[])
    with pytest.raises(ValueError, match="both username and password"):
        EmailNotifier("h", from_addr="a@example.com", to_addrs=["b@x"], username="u")
    assert EmailNotifier("h", from_addr="a", to_addrs=["b"], security="ssl").port == 465
