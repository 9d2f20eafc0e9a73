"""Sending a message over SMTP with the standard library: STARTTLS or implicit TLS,
optional authentication. Every failure becomes :class:`MailError` here, so the
delivery above sees one error and never an smtplib or socket exception."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from .settings import NotifySettings, SmtpSecurity


class MailError(Exception):
    """The message was not accepted (the server is unreachable, refused it, or TLS failed)."""


@dataclass(frozen=True)
class Message:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    message_id: str


def send(settings: NotifySettings, message: Message) -> None:
    """Hand ``message`` to the SMTP server. :raises MailError: when it is not accepted."""
    mail = EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = ", ".join(message.to)
    mail["Subject"] = message.subject
    mail["Message-ID"] = message.message_id
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    try:
        if settings.security is SmtpSecurity.TLS:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=settings.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_seconds)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"{type(exc).__name__}: {exc}") from exc
    try:
        if settings.security is SmtpSecurity.STARTTLS:
            client.starttls(context=context)  # refused (SMTPNotSupportedError) when not offered: never falls back
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            client.login(settings.username, password)
        client.send_message(mail, from_addr=settings.sender, to_addrs=list(message.to))
    except (smtplib.SMTPException, OSError) as exc:
        client.close()
        raise MailError(f"{type(exc).__name__}: {exc}") from exc
    # Accepted: a failure to say goodbye does not make it unsent (it would be sent twice).
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
