"""What the mailer needs to know: the programme's identity and the SMTP server (mailkit/servers.py).

A plain frozen dataclass, checked when built so that a bad value fails at start with a message
naming the setting, not halfway through a batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from pathlib import Path
from typing import Any

from mailkit.servers import SmtpServer


class SettingsError(ValueError):
    """A mail setting that cannot work, naming the setting."""


@dataclass(frozen=True)
class MailSettings:
    programme_name: str
    programme_address: str
    organisers: list[str]
    list_id: str
    smtp: SmtpServer  # the [smtp] section (or the sandbox's server): mailkit/servers.py
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
    programme = config.programme
    return MailSettings(
        programme_name=programme.name,
        programme_address=programme.address,
        organisers=list(programme.organisers),
        list_id=make_list_id(programme.name, programme.address),
        smtp=config.outbound_smtp,
        templates_dir=config.templates_dir,
    )
