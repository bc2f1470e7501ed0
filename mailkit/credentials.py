"""What a mail server login is made with: a fixed password, a password from a command, or an OAuth2 token.

Each kind is a ``Credential``: ``secret()`` gives what to log in with now, and ``renew()``, called after the
server refused it, says whether a different one is worth one more try (a rotated password, a fresh access
token). ``login_with`` is the one place that makes that single retry, for IMAP and SMTP alike.

``password_command`` is an argv list, run without a shell: the configuration names a program and its
arguments, and nothing in it is ever parsed by a shell. The first line of its standard output is the
password. A failure names the server and the exit status, never the command's output (it may hold the
secret, or half of it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

COMMAND_TIMEOUT = 60.0  # seconds; a password manager may wait for its agent, never for ever

T = TypeVar("T")


class CredentialError(Exception):
    """The secret could not be had (command failed, OAuth2 refresh refused): one line, no secret in it."""


class Credential(Protocol):
    def secret(self) -> str:
        """The password or access token to log in with now."""

    def renew(self) -> bool:
        """The server refused ``secret()``: True if the next ``secret()`` is a different one worth trying."""


@dataclass
class StaticPassword:
    """A password known at start (from the environment variable the configuration names)."""

    value: str = field(repr=False)

    def secret(self) -> str:
        return self.value

    def renew(self) -> bool:
        return False


Runner = Callable[..., subprocess.CompletedProcess]


@dataclass
class CommandPassword:
    """The first output line of ``argv`` (like mbsync's PassCmd), run at the first login and again after a
    refusal, in case the stored password was changed meanwhile."""

    argv: Sequence[str]
    server: str  # named in errors, e.g. "IMAP server imap.example.org"
    run: Runner = subprocess.run
    timeout: float = COMMAND_TIMEOUT
    _cached: str | None = field(default=None, repr=False)

    def secret(self) -> str:
        if self._cached is None:
            self._cached = self._run()
        return self._cached

    def renew(self) -> bool:
        previous, self._cached = self._cached, None
        return self.secret() != previous

    def _run(self) -> str:
        program = self.argv[0] if self.argv else "(empty)"
        where = f"password_command for {self.server} ({program})"
        try:
            result = self.run(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise CredentialError(f"{where}: no such program") from None
        except PermissionError:
            raise CredentialError(f"{where}: not executable") from None
        except subprocess.TimeoutExpired:
            raise CredentialError(f"{where}: gave no answer within {self.timeout:.0f} s") from None
        except OSError as exc:
            raise CredentialError(f"{where}: cannot run ({exc.__class__.__name__})") from None
        if result.returncode != 0:
            raise CredentialError(f"{where} failed with exit status {result.returncode}")
        lines = bytes(result.stdout).decode("utf-8", "replace").splitlines()
        password = lines[0].rstrip("\r") if lines else ""
        if not password:
            raise CredentialError(f"{where} printed no password on its first line")
        return password


def login_with(credential: Credential, login: Callable[[str], T], refused: type[BaseException]) -> T:
    """``login(secret)``; if the server refuses it (``refused``) and the credential has a different secret
    now, one more try: an access token may have expired early or been revoked, a password rotated."""
    try:
        return login(credential.secret())
    except refused:
        if not credential.renew():
            raise
    return login(credential.secret())
