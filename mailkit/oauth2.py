"""OAuth2 for mail servers: the device-code login (RFC 8628), the stored refresh token, fresh access tokens.

The protocol (request bodies, token responses, error codes) is oauthlib's: it is maintained, follows the
RFCs, and does no I/O of its own, so the HTTP call and the clock are passed in here and tests drive it
against a local token server. (msal covers Microsoft only and wants its authority discovery; authlib
brings its own HTTP client and clock.)

The refresh token is the one long-lived secret: it lives in ``RefreshTokenFile`` (mode 0600 in a 0700
folder) and never in a log line, an exception or ``repr``. Access tokens live in memory only
(``AccessTokens``), renewed shortly before they expire and whenever a server refuses one.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oauthlib.common import urlencode
from oauthlib.oauth2 import DeviceClient
from oauthlib.oauth2 import OAuth2Error as ProtocolError

from mailkit.credentials import CredentialError

PROVIDERS = ("microsoft", "google", "custom")
MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)
GOOGLE_SCOPES = ("https://mail.google.com/",)
HTTP_TIMEOUT = 30.0
REFRESH_MARGIN = timedelta(seconds=60)  # renew this long before the token's own expiry
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_FILE_VERSION = 1

Now = Callable[[], datetime]
# POST a form (an urlencoded body) and give back the response body, whatever the HTTP status: OAuth2
# servers answer errors as JSON with status 400.
Http = Callable[[str, str], str]


class OAuth2Error(CredentialError):
    """An OAuth2 step failed; the message says which, and what to do."""


@dataclass(frozen=True)
class OAuth2Client:
    """Who we are to the identity provider and where its endpoints are."""

    provider: str
    client_id: str
    device_url: str
    token_url: str
    scopes: tuple[str, ...]
    client_secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("device_url", "token_url"):
            _check_url(getattr(self, name), name)


def client_for(
    provider: str,
    client_id: str,
    *,
    tenant: str = "",
    client_secret: str = "",
    device_url: str = "",
    token_url: str = "",
    scopes: Sequence[str] = (),
) -> OAuth2Client:
    """The endpoints and scopes of a known provider; ``custom`` takes them all as given."""
    if provider == "microsoft":
        base = f"https://login.microsoftonline.com/{tenant or 'organizations'}/oauth2/v2.0"
        device_url, token_url = device_url or f"{base}/devicecode", token_url or f"{base}/token"
        scopes = scopes or MICROSOFT_SCOPES
    elif provider == "google":
        device_url = device_url or "https://oauth2.googleapis.com/device/code"
        token_url = token_url or "https://oauth2.googleapis.com/token"
        scopes = scopes or GOOGLE_SCOPES
    elif provider != "custom":
        raise ValueError(f"unknown OAuth2 provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    return OAuth2Client(provider, client_id, device_url, token_url, tuple(scopes), client_secret)


def _check_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return  # a token server on this machine (tests); tokens never cross a network in clear
    raise ValueError(f"{name}: expected an https:// URL (http:// only for 127.0.0.1/localhost), got {url!r}")


def post_form(url: str, body: str, timeout: float = HTTP_TIMEOUT) -> str:
    """The real HTTP call: a form POST; unreachable servers become one OAuth2Error line."""
    request = urllib.request.Request(
        url,
        data=body.encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuth2Error(f"cannot reach the OAuth2 server {url}: {reason}") from None


# -- the device-code login ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceLogin:
    """What the person signing in needs (URL and code) and what polling needs (device code, interval)."""

    verification_uri: str
    user_code: str
    expires_in: int
    interval: int
    device_code: str = field(repr=False)


@dataclass(frozen=True)
class TokenGrant:
    access_token: str = field(repr=False)
    expires_at: datetime
    refresh_token: str = field(default="", repr=False)


def start_device_login(client: OAuth2Client, http: Http = post_form) -> DeviceLogin:
    """Ask for a device code (RFC 8628 section 3.1)."""
    fields = {"client_id": client.client_id, "scope": " ".join(client.scopes)}
    if client.client_secret:
        fields["client_secret"] = client.client_secret
    data = _json(http(client.device_url, urlencode(list(fields.items()))), client.device_url)
    if "error" in data:
        raise OAuth2Error(f"the device login was refused by {client.device_url}: {_error_text(data)}")
    try:
        return DeviceLogin(
            # Google names it verification_url; RFC 8628 verification_uri.
            verification_uri=str(data.get("verification_uri") or data["verification_url"]),
            user_code=str(data["user_code"]),
            expires_in=int(data.get("expires_in", 900)),
            interval=max(1, int(data.get("interval", 5))),
            device_code=str(data["device_code"]),
        )
    except (KeyError, TypeError, ValueError):
        raise OAuth2Error(f"{client.device_url} did not answer with a device code") from None


def finish_device_login(
    client: OAuth2Client,
    login: DeviceLogin,
    *,
    now: Now,
    sleep: Callable[[float], None] = time.sleep,
    http: Http = post_form,
) -> TokenGrant:
    """Poll the token endpoint until the person has signed in (RFC 8628 section 3.4-3.5)."""
    protocol = DeviceClient(client.client_id, client_secret=client.client_secret or None)
    deadline = now() + timedelta(seconds=login.expires_in)
    interval = login.interval
    while True:
        body = protocol.prepare_request_body(
            login.device_code, include_client_id=True, client_secret=client.client_secret or None
        )
        try:
            return _grant(protocol, http(client.token_url, body), now, client.token_url)
        except _Pending as pending:
            if pending.error == "slow_down":
                interval += 5  # RFC 8628 section 3.5
        if now() + timedelta(seconds=interval) > deadline:
            raise OAuth2Error("the sign-in was not completed in time: run `unmentoring auth login` again")
        sleep(interval)


class _Pending(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _grant(protocol: DeviceClient, text: str, now: Now, url: str) -> TokenGrant:
    data = _json(text, url)
    error = data.get("error")
    if error in ("authorization_pending", "slow_down"):
        raise _Pending(str(error))
    if error == "access_denied":
        raise OAuth2Error("the sign-in was declined: run `unmentoring auth login` again")
    if error == "expired_token":
        raise OAuth2Error("the sign-in code expired: run `unmentoring auth login` again")
    try:
        # scope=None: providers answer with their own spelling of the scopes (Microsoft drops
        # offline_access); what counts is whether the server then accepts the token.
        token = protocol.parse_request_body_response(text, scope=None)
    except ProtocolError as exc:
        raise OAuth2Error(f"{url} refused: {_error_text({'error': exc.error, **_desc(exc)})}") from None
    except (ValueError, KeyError, Warning):
        raise OAuth2Error(f"{url} did not answer with a token") from None
    lifetime = _lifetime(token.get("expires_in"))
    return TokenGrant(
        access_token=str(token["access_token"]),
        expires_at=now() + lifetime,
        refresh_token=str(token.get("refresh_token") or ""),
    )


def _lifetime(expires_in: Any) -> timedelta:
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        seconds = 3600.0  # RFC 6749 leaves it optional; providers mean an hour
    return timedelta(seconds=max(0.0, seconds))


def _desc(exc: ProtocolError) -> dict[str, str]:
    return {"error_description": exc.description} if exc.description else {}


def _json(text: str, url: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OAuth2Error(f"{url} did not answer with JSON")
    return data


def _error_text(data: dict[str, Any]) -> str:
    description = str(data.get("error_description") or "").splitlines()
    # Microsoft puts a trace id and a timestamp on further lines: the first line says what happened.
    return f"{data.get('error')}" + (f" ({description[0].strip()})" if description else "")


# -- the stored refresh token ---------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshTokenFile:
    """The refresh token in the data folder: 0600, folder 0700, replaced atomically."""

    path: Path

    def exists(self) -> bool:
        return self.path.exists()

    def load(self, client: OAuth2Client) -> str:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OAuth2Error(
                f"not signed in yet ({self.path} is missing): run `unmentoring auth login`"
            ) from None
        except (OSError, ValueError):
            raise OAuth2Error(f"{self.path} cannot be read: run `unmentoring auth login` again") from None
        token = data.get("refresh_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise OAuth2Error(f"{self.path} holds no refresh token: run `unmentoring auth login` again")
        if data.get("client_id") != client.client_id or data.get("token_url") != client.token_url:
            raise OAuth2Error(
                f"{self.path} was made for another [oauth2] client_id or provider: "
                "run `unmentoring auth login` again"
            )
        return token

    def save(self, client: OAuth2Client, refresh_token: str) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        record = {
            "version": TOKEN_FILE_VERSION,
            "provider": client.provider,
            "client_id": client.client_id,
            "token_url": client.token_url,
            "refresh_token": refresh_token,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        # Created 0600 from the start: no moment where another user could read it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


# -- access tokens --------------------------------------------------------------------------------


class AccessTokens:
    """A ``Credential`` giving a valid access token: cached in memory, refreshed with the stored refresh
    token shortly before it expires (by the injected clock) and whenever a server refused it."""

    def __init__(
        self, client: OAuth2Client, store: RefreshTokenFile, *, now: Now, http: Http = post_form
    ) -> None:
        self._client = client
        self._store = store
        self._now = now
        self._http = http
        self._token: TokenGrant | None = None
        self._renew_at: datetime | None = None
        self.refreshes = 0  # how many times a token was fetched (for status and tests)

    def __repr__(self) -> str:
        return f"AccessTokens({self._client.provider}, {self._client.token_url})"

    def secret(self) -> str:
        now = self._now()
        if self._token is None or self._renew_at is None or now >= self._renew_at:
            self._refresh(now)
        assert self._token is not None
        return self._token.access_token

    def renew(self) -> bool:
        self._token = None
        return True

    def _refresh(self, now: datetime) -> None:
        client = self._client
        refresh_token = self._store.load(client)
        protocol = DeviceClient(client.client_id, client_secret=client.client_secret or None)
        body = protocol.prepare_refresh_body(
            refresh_token=refresh_token,
            scope=list(client.scopes),
            client_id=client.client_id,
            client_secret=client.client_secret or None,
        )
        text = self._http(client.token_url, body)
        try:
            grant = _grant(protocol, text, self._now, client.token_url)
        except _Pending:
            raise OAuth2Error(f"{client.token_url} answered a refresh as if it were a device login") from None
        except OAuth2Error as exc:
            if _json(text, client.token_url).get("error") == "invalid_grant":
                raise OAuth2Error(
                    f"the OAuth2 refresh token was refused by {client.token_url} (revoked or expired): "
                    "run `unmentoring auth login` again"
                ) from None
            raise exc from None
        # Microsoft rotates refresh tokens: keep the newest, so the stored one never goes stale.
        if grant.refresh_token and grant.refresh_token != refresh_token:
            self._store.save(client, grant.refresh_token)
        lifetime = grant.expires_at - now
        self._token = grant
        self._renew_at = grant.expires_at - min(REFRESH_MARGIN, lifetime / 2)
        self.refreshes += 1
