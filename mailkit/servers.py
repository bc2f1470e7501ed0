"""The mail servers the service talks to: one definition of each setting, checked once.

``ImapServer`` and ``SmtpServer`` are the ``[imap]`` and ``[smtp]`` sections of the configuration
(unmentoring/config.py reads them from TOML) and exactly what ``inbox.sources.imap.ImapSource`` and
``mailer.smtp.SmtpSender`` take. A value that cannot work raises ``ServerSettingError`` naming the
key as it is written in the file ("smtp.security"), so the configuration reports it as its own.
The password is kept out of ``repr`` so it never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

SECURITY_MODES = ("ssl", "starttls", "none")
AUTH_MODES = ("password", "oauth2")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ServerSettingError(ValueError):
    """A server setting that cannot work: ``key`` as written in the file, and why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class MailServer:
    """What connecting to an IMAP or SMTP server takes."""

    SECTION: ClassVar[str] = "server"

    host: str = ""
    port: int = 0
    security: str = "ssl"  # "ssl" (implicit TLS), "starttls", or "none" (this machine only)
    username: str = ""
    password_env: str = ""  # the environment variable holding the password
    password_command: list[str] = field(default_factory=list)  # argv whose first output line is the password
    auth: str = "password"  # "password" (password_env or password_command) or "oauth2" (see [oauth2])
    timeout: float = 30.0  # connect and read timeout, seconds
    ca_file: str = ""  # an extra CA bundle, added to the system's; certificates are always verified
    password: str = field(default="", repr=False)  # the secret (from password_env), never from the file

    def __post_init__(self) -> None:
        for key, problem in self.problems():
            raise ServerSettingError(f"{self.SECTION}.{key}", problem)

    def problems(self) -> Iterator[tuple[str, str]]:
        """(key, problem) for each setting that cannot work, most basic first."""
        if not self.host:
            yield "host", "expected the server's host name"
        if self.security not in SECURITY_MODES:
            yield "security", f"expected one of {', '.join(SECURITY_MODES)}"
        # Plain text on the wire only when the wire never leaves this machine.
        if self.security == "none" and self.host.lower() not in LOCAL_HOSTS:
            yield "security", "'none' (no TLS) is allowed only for a server on this machine"
        if not 0 < self.port < 65536:
            yield "port", f"expected a port number, got {self.port}"
        if self.auth not in AUTH_MODES:
            hint = " (a fixed token in password_env is now auth = 'oauth2')" if self.auth == "xoauth2" else ""
            yield "auth", f"expected 'password' or 'oauth2'{hint}"
        if self.password_command and not self.password_command[0]:
            yield "password_command", "expected a program name as the first item"
        if self.password_command and self.password_env:
            yield "password_command", "expected either password_env or this, not both"
        if not self.timeout > 0:
            yield "timeout", f"expected a positive number of seconds, got {self.timeout}"

    @property
    def mechanism(self) -> str:
        """The SASL mechanism the login uses: "login" with a password, "xoauth2" with an access token."""
        return "xoauth2" if self.auth == "oauth2" else "login"


@dataclass(frozen=True)
class ImapServer(MailServer):
    SECTION: ClassVar[str] = "imap"

    port: int = 993
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    poll_seconds: int = 60

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        folders = (self.folder, self.processed_folder, self.quarantine_folder)
        if not all(folders):
            yield "folder", "folder names must not be empty"
        elif len(set(folders)) != 3:
            yield "folder", "the folder, processed_folder and quarantine_folder must all differ"

    @property
    def state_key(self) -> str:
        return f"imap:{self.username}@{self.host}/{self.folder}"


@dataclass(frozen=True)
class SmtpServer(MailServer):
    SECTION: ClassVar[str] = "smtp"

    port: int = 587
    security: str = "starttls"
    envelope_from: str = ""  # bounce address (MAIL FROM); the programme address when empty
    per_minute: int = 30  # messages a minute (Microsoft 365 allows 30); 0 = no limit
    per_day: int = 10000  # ... and recipients a day (10,000); 0 = no limit

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.per_minute < 0 or self.per_day < 0:
            yield "per_minute", "expected 0 (no limit) or more, also for per_day"
