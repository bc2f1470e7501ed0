"""Configuration: one TOML file read into typed dataclasses, checked completely at start.

Every problem is reported as one ``ConfigError`` naming the file, the key and what was expected. Secrets never
appear in the file: a section names the environment variable that holds its password (``password_env``).
With no file at all, the service runs on the sandbox defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailkit.servers import ImapServer, ServerSettingError, SmtpServer
from matcher.calendar import MONTHS
from matcher.limits import Limits

DEFAULT_FILE = "unmentoring.toml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ORDINALS = ("first", "second", "third", "fourth", "last")
ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$|^[^@\s<>\"]+@localhost$")


class Mode(StrEnum):
    """How mail comes in and goes out; decided once, by ``Config.mode``."""

    SANDBOX = "sandbox"  # the built-in SMTP server on this machine receives and delivers everything
    PRODUCTION = "production"  # IMAP in, SMTP out
    MTA = "mta"  # our LMTP server receives from the site's MTA, SMTP out


@dataclass(frozen=True)
class Listener:
    """The receiving server this process runs (sandbox SMTP or LMTP) and the Maildir it fills."""

    mode: Mode
    host: str
    port: int
    maildir: Path


class ConfigError(Exception):
    """A configuration problem: which file, which key, what was expected."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}")
        self.file = str(file)
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Programme:
    name: str = "UnMentoring"
    address: str = "unmentoring@localhost"
    organisers: list[str] = field(default_factory=lambda: ["organiser@localhost"])
    timezone: str = "Europe/London"
    cadence: str = "first Monday"  # "<first|second|third|fourth|last> <weekday>" of every month
    start_time: str = "09:00"  # when the round starts and the introductions go out
    meeting_week: int = 1  # 1 = the week that starts with the introductions, 2 = the next...
    followup_day: str = "Monday"  # follow-up on the first such day after the meeting week
    reminder_after_days: int = 5  # days after the follow-up to remind who has not answered; 0 = never
    every_months: int = 1  # 1, 2 or 3: a round every month, every 2 or every 3 months (from January)
    skip: list[str] = field(default_factory=list)  # months with no round every year, e.g. ["August"]
    nudge_after_days: int = 3  # "have you found a time?" this many days into the meeting week; 0 = never
    data_dir: str = "data"  # relative to the config file's folder
    templates_dir: str = ""  # the organiser's wording (overrides by file name); relative like data_dir
    forward_unread: list[str] = field(default_factory=list)  # forward mail we cannot read to these at once

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


# [imap] and [smtp] are mailkit/servers.py's ImapServer and SmtpServer: what the IMAP source and the SMTP
# sender take, defined and checked there once.
Imap = ImapServer
Smtp = SmtpServer


@dataclass(frozen=True)
class Lmtp:
    listen: str = ""  # "127.0.0.1:8024"; empty = no LMTP server
    spool: str = "spool"  # Maildir under data_dir where accepted mail waits

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


@dataclass(frozen=True)
class Sandbox:
    host: str = "127.0.0.1"
    port: int = 2525
    folder: str = "sandbox"  # under data_dir: inbox/ and mailboxes/<address>/


# -- [oauth2]: one sign-in for both servers (unmentoring auth login) --------------------------------


@dataclass(frozen=True)
class OAuth2:
    provider: str = "microsoft"  # "microsoft", "google" or "custom"
    client_id: str = ""  # the application (client) id of your app registration
    tenant: str = ""  # Microsoft: your directory (tenant) id or domain; empty = any work account
    client_secret_env: str = ""  # the environment variable holding the client secret (Google needs one)
    device_url: str = ""  # custom: the device authorization endpoint (known for microsoft and google)
    token_url: str = ""  # custom: the token endpoint
    scopes: list[str] = field(default_factory=list)  # empty = the provider's mail scopes
    client_secret: str = field(default="", repr=False)  # from client_secret_env, never from the file


def _with_auth(config: Config, path: Path, environ: Mapping[str, str]) -> Config:
    """Check how each server logs in, and fill in the [oauth2] client secret from the environment."""
    # Imported here: oauthlib is needed only by configurations that use it, and every command loads one.
    from mailkit.oauth2 import PROVIDERS, client_for

    for name in ("imap", "smtp"):
        section = getattr(config, name)
        if section is None:
            continue
        if section.auth == "oauth2":
            if section.password_env or section.password_command:
                key = "password_env" if section.password_env else "password_command"
                raise ConfigError(
                    path, f"{name}.{key}", "not used with auth = 'oauth2' (the token comes from [oauth2])"
                )
            if config.oauth2 is None:
                raise ConfigError(path, "oauth2", f"{name}.auth = 'oauth2' needs an [oauth2] section")
    oauth2 = config.oauth2
    if oauth2 is None:
        return config
    if oauth2.provider not in PROVIDERS:
        raise ConfigError(path, "oauth2.provider", f"expected one of {', '.join(PROVIDERS)}")
    if not oauth2.client_id:
        raise ConfigError(
            path, "oauth2.client_id", "expected the application (client) id of your app registration"
        )
    if oauth2.provider == "custom":
        for key in ("device_url", "token_url", "scopes"):
            if not getattr(oauth2, key):
                raise ConfigError(path, f"oauth2.{key}", "expected a value for provider = 'custom'")
    secret = environ.get(oauth2.client_secret_env, "") if oauth2.client_secret_env else ""
    try:
        client_for(
            oauth2.provider, oauth2.client_id, device_url=oauth2.device_url, token_url=oauth2.token_url
        )
    except ValueError as exc:  # "device_url: expected an https:// URL ..."
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(path, f"oauth2.{key}", problem) from None
    return dataclasses.replace(config, oauth2=dataclasses.replace(oauth2, client_secret=secret))


@dataclass(frozen=True)
class Config:
    programme: Programme = field(default_factory=Programme)
    imap: Imap | None = None
    smtp: Smtp | None = None
    lmtp: Lmtp | None = None
    sandbox: Sandbox = field(default_factory=Sandbox)
    limits: Limits = field(default_factory=Limits)
    oauth2: OAuth2 | None = None
    source: str = "(built-in sandbox defaults)"
    base_dir: Path = field(default_factory=Path.cwd)
    # (key, variable) of secrets whose environment variable is not set: only the commands that connect to a
    # mail server need them (require_secrets), so status, members, explain... work without them
    missing_env: tuple[tuple[str, str], ...] = ()

    def require_secrets(self, section: str = "") -> None:
        """Refuse (ConfigError) when a secret the mail servers need (those of ``section``: "oauth2"...) is
        not in the environment."""
        for key, variable in self.missing_env:
            if key.startswith(section):
                raise ConfigError(self.source, key, f"environment variable {variable} is not set")

    @property
    def mode(self) -> Mode:
        """The one place that decides: LMTP listening -> mta; IMAP configured -> production; else sandbox.
        Everything below asks for ``inbound_imap``, ``listener`` and ``outbound_smtp`` instead."""
        if self.lmtp is not None and self.lmtp.listen:
            return Mode.MTA
        if self.imap is not None:
            return Mode.PRODUCTION
        return Mode.SANDBOX

    @property
    def inbound_imap(self) -> Imap | None:
        """The IMAP folder mail is read from; None when it is read from ``listener().maildir``."""
        return self.imap if self.mode is Mode.PRODUCTION else None

    def listener(self) -> Listener | None:
        """The receiving server to run, if any (production reads IMAP and runs none)."""
        if self.mode is Mode.MTA:
            assert self.lmtp is not None
            host, port = self.lmtp.host_port
            return Listener(Mode.MTA, host, port, self.data_dir / self.lmtp.spool)
        if self.mode is Mode.SANDBOX:
            return Listener(Mode.SANDBOX, self.sandbox.host, self.sandbox.port, self.sandbox_dir / "inbox")
        return None

    @property
    def outbound_smtp(self) -> Smtp:
        """Where mail goes out: the configured SMTP server, else the sandbox's, in plain text on this
        machine and without sending limits."""
        if self.smtp is not None:
            return self.smtp
        return Smtp(host=self.sandbox.host, port=self.sandbox.port, security="none", per_minute=0, per_day=0)

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.programme.data_dir).resolve()

    @property
    def templates_dir(self) -> Path | None:
        """The organiser's template overrides, or None: the shipped wording only."""
        folder = self.programme.templates_dir
        return (self.base_dir / folder).resolve() if folder else None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "unmentoring.json"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / self.sandbox.folder

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets replaced by a mark."""
        out: dict[str, Any] = {"mode": self.mode.value, "source": self.source, "data_dir": str(self.data_dir)}
        for name in SECTIONS:
            section = getattr(self, name)
            if section is None:
                continue
            values = dataclasses.asdict(section)
            for secret in SECRETS & set(values):
                values[secret] = "********" if values[secret] else ""
            out[name] = values
        return out


SECTIONS: Mapping[str, type] = {
    "programme": Programme,
    "imap": Imap,
    "smtp": Smtp,
    "lmtp": Lmtp,
    "sandbox": Sandbox,
    "limits": Limits,
    "oauth2": OAuth2,
}
SECRETS = frozenset({"password", "client_secret"})


def find_config_path(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """--config, else $UNMENTORING_CONFIG, else ./unmentoring.toml if it exists, else None (sandbox)."""
    chosen = explicit or environ.get("UNMENTORING_CONFIG")
    if chosen:
        return Path(chosen)
    default = Path(DEFAULT_FILE)
    return default if default.exists() else None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", f"cannot be read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(file)", f"is not valid TOML ({exc})") from None
    return parse_config(raw, path, environ)


def parse_config(raw: Mapping[str, Any], path: Path, environ: Mapping[str, str]) -> Config:
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(path, unknown[0], f"unknown section; expected one of {', '.join(SECTIONS)}")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        if name not in raw:
            continue
        table = raw[name]
        if not isinstance(table, dict):
            raise ConfigError(path, name, "expected a [section] table")
        sections[name] = _build_section(cls, table, name, path, environ)
    config = Config(**sections, source=str(path), base_dir=path.resolve().parent)
    config = _with_auth(config, path, environ)
    config = dataclasses.replace(config, missing_env=_missing_env(config, environ))
    _validate(config, path)
    return config


def _missing_env(config: Config, environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(key, variable) for each secret's environment variable that is not set."""
    named = [
        (f"{name}.password_env", getattr(config, name).password_env)
        for name in ("imap", "smtp")
        if getattr(config, name) is not None
    ]
    if config.oauth2 is not None:
        named.append(("oauth2.client_secret_env", config.oauth2.client_secret_env))
    return tuple((key, variable) for key, variable in named if variable and variable not in environ)


def _build_section(cls: type, table: Mapping[str, Any], name: str, path: Path, environ: Mapping[str, str]):
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name not in SECRETS}
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{name}.{key}"
        if key not in fields:
            raise ConfigError(path, dotted, f"unknown key; expected one of {', '.join(sorted(fields))}")
        values[key] = _check_type(hints[key], value, dotted, path)
    variable = values.get("password_env")
    if variable and variable in environ:  # a missing one is named by Config.missing_env
        values["password"] = environ[variable]
    try:
        return cls(**values)
    except ServerSettingError as exc:  # [imap] / [smtp]: checked where they are defined
        raise ConfigError(path, exc.key, exc.problem) from None


def _check_type(hint: Any, value: Any, key: str, path: Path) -> Any:
    expected = _describe(hint)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise ConfigError(path, key, f"expected {expected}, got {_describe_value(value)}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(path, key, f"expected {expected}, got {_describe_value(value)}")
    return value


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        return "a list of " + _describe(typing.get_args(hint)[0]).removeprefix("a ").removeprefix("an ") + "s"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def _describe_value(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _validate(config: Config, path: Path) -> None:
    p = config.programme
    try:
        ZoneInfo(p.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            path, "programme.timezone", f"unknown time zone {p.timezone!r}; expected e.g. 'Europe/London'"
        ) from None
    for key, address in (
        [("programme.address", p.address)]
        + [("programme.organisers", a) for a in p.organisers]
        + [("programme.forward_unread", a) for a in p.forward_unread]
    ):
        if not ADDRESS.match(address):
            raise ConfigError(path, key, f"expected an email address, got {address!r}")
    if p.address.lower() in {a.lower() for a in p.forward_unread}:
        raise ConfigError(
            path, "programme.forward_unread", "expected addresses other than the programme's own"
        )
    parse_cadence(p.cadence, path)
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", p.start_time):
        raise ConfigError(path, "programme.start_time", f"expected HH:MM (24-hour), got {p.start_time!r}")
    if not 1 <= p.meeting_week <= 3:
        raise ConfigError(path, "programme.meeting_week", f"expected 1, 2 or 3, got {p.meeting_week}")
    skip_months(p, path)
    if not 0 <= p.nudge_after_days <= 6:
        raise ConfigError(
            path, "programme.nudge_after_days", f"expected 0 (never) to 6, got {p.nudge_after_days}"
        )
    if p.followup_day.lower() not in WEEKDAYS:
        raise ConfigError(path, "programme.followup_day", f"expected a weekday name, got {p.followup_day!r}")
    if p.reminder_after_days < 0:
        raise ConfigError(path, "programme.reminder_after_days", "expected 0 (never) or more days")
    templates = config.templates_dir
    if templates is not None and not templates.is_dir():
        raise ConfigError(path, "programme.templates_dir", f"expected a folder; {templates} is not one")
    if config.imap is not None and config.smtp is None:
        raise ConfigError(path, "smtp", "an [imap] section needs an [smtp] section to send with")
    if config.lmtp is not None and config.lmtp.listen:
        if not re.fullmatch(r"[\w.:-]+:\d{1,5}", config.lmtp.listen):
            raise ConfigError(path, "lmtp.listen", f"expected HOST:PORT, got {config.lmtp.listen!r}")
        if config.smtp is None:
            raise ConfigError(path, "smtp", "an [lmtp] section needs an [smtp] section to send with")
    if not 0 < config.sandbox.port < 65536:
        raise ConfigError(path, "sandbox.port", f"expected a port number, got {config.sandbox.port}")
    for key, problem in config.limits.problems():
        raise ConfigError(path, f"limits.{key}", problem)


def skip_months(programme: Programme, path: Path | str = "(config)") -> frozenset[int]:
    """programme.skip as month numbers (1 = January), checked with programme.every_months."""
    if programme.every_months not in (1, 2, 3):
        raise ConfigError(path, "programme.every_months", f"expected 1, 2 or 3, got {programme.every_months}")
    names = [m.lower() for m in MONTHS]
    months = set()
    for name in programme.skip:
        word = name.strip().lower()
        found = [i for i, month in enumerate(names, start=1) if word in (month, month[:3])]
        if not found:
            raise ConfigError(path, "programme.skip", f"expected month names like 'August', got {name!r}")
        months.add(found[0])
    held = [m for m in range(1, 13) if (m - 1) % programme.every_months == 0 and m not in months]
    if not held:
        raise ConfigError(path, "programme.skip", "skips every month a round would be held in")
    return frozenset(months)


def parse_cadence(cadence: str, path: Path | str = "(config)") -> tuple[int, int]:
    """ "first Monday" -> (0, 0); "last Friday" -> (-1, 4): (which occurrence, weekday number)."""
    words = cadence.lower().split()
    if len(words) != 2 or words[0] not in ORDINALS or words[1] not in WEEKDAYS:
        raise ConfigError(
            path, "programme.cadence", f"expected e.g. 'first Monday' or 'last Friday', got {cadence!r}"
        )
    which = -1 if words[0] == "last" else ORDINALS.index(words[0])
    return which, WEEKDAYS.index(words[1])
