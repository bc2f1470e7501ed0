"""What the mailer needs to know: the programme's identity and how to reach the SMTP server.

Plain frozen dataclasses, checked when built so that a bad value fails at start with a message
naming the setting, not halfway through a batch. The password is kept out of ``repr`` so it never
reaches a log line.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from pathlib import Path
from typing import Any

SECURITY_MODES = ("ssl", "starttls", "none")
AUTH_MODES = ("login", "xoauth2")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SettingsError(ValueError):
    """A mail setting that cannot work, naming the setting."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 587
    security: str = "starttls"  # "ssl" (implicit TLS) | "starttls" | "none" (loopback only)
    username: str = ""  # empty: no AUTH
    # The secret (or the OAuth2 access token when auth == "xoauth2"); never in repr or logs.
    password: str = field(default="", repr=False)
    auth: str = "login"  # "login" | "xoauth2"
    timeout: float = 30.0  # socket timeout, seconds
    ca_file: str = ""  # extra CA bundle; empty = the system trust store
    envelope_from: str = ""  # bounce address (MAIL FROM); empty = the programme address
    per_minute: int = 0  # messages per minute; 0 = no limit
    per_day: int = 0  # recipients per 24 hours; 0 = no limit

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise SettingsError(
                f"smtp.security: expected one of {', '.join(SECURITY_MODES)}, got {self.security!r}"
            )
        # Plain text on the wire only when the wire never leaves this machine (the sandbox).
        if self.security == "none" and self.host not in LOOPBACK_HOSTS:
            raise SettingsError(
                f"smtp.security: 'none' (no TLS) is allowed only for 127.0.0.1/localhost, not {self.host!r}"
            )
        if self.auth not in AUTH_MODES:
            raise SettingsError(f"smtp.auth: expected one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"smtp.port: expected a port number, got {self.port}")
        if self.timeout <= 0:
            raise SettingsError(f"smtp.timeout: expected a positive number of seconds, got {self.timeout}")
        if self.per_minute < 0 or self.per_day < 0:
            raise SettingsError("smtp.per_minute / smtp.per_day: expected 0 (no limit) or more")


@dataclass(frozen=True)
class MailSettings:
    programme_name: str
    programme_address: str
    organisers: list[str]
    list_id: str
    smtp: SmtpSettings
    templates_dir: Path | None = None  # the organiser's templates; None = only the shipped ones

    def __post_init__(self) -> None:
        try:
            Address(addr_spec=self.programme_address)
        except (ValueError, IndexError) as exc:
            raise SettingsError(
                f"programme.address: not a usable email address: {self.programme_address!r} ({exc})"
            ) from None
        if "@" not in self.programme_address:
            raise SettingsError(f"programme.address: expected user@domain, got {self.programme_address!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", self.list_id):
            raise SettingsError(f"list_id: expected e.g. 'unmentoring.example.org', got {self.list_id!r}")

    @property
    def domain(self) -> str:
        return self.programme_address.rsplit("@", 1)[1]

    @property
    def envelope_from(self) -> str:
        return self.smtp.envelope_from or self.programme_address


def make_list_id(programme_name: str, programme_address: str) -> str:
    """RFC 2919 list identifier: the programme name as a slug, then the address's domain."""
    slug = re.sub(r"[^a-z0-9]+", "-", programme_name.lower()).strip("-") or "programme"
    return f"{slug}.{programme_address.rsplit('@', 1)[-1]}"


def mail_settings_from_config(config: Any) -> MailSettings:
    """Build the mailer's settings from ``unmentoring.config.Config`` (duck-typed: the mailer may not import
    the front door). Which server mail goes out through is the config's decision (``outbound_smtp``)."""
    programme, server = config.programme, config.outbound_smtp
    shared = {f.name: getattr(server, f.name) for f in dataclasses.fields(SmtpSettings) if f.name != "auth"}
    smtp = SmtpSettings(**shared, auth=server.mechanism)
    return MailSettings(
        programme_name=programme.name,
        programme_address=programme.address,
        organisers=list(programme.organisers),
        list_id=make_list_id(programme.name, programme.address),
        smtp=smtp,
        templates_dir=config.templates_dir,
    )
