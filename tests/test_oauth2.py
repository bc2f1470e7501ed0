"""OAuth2 and password_command, from the outside.

The service signs in with the device-code flow against a local token server, then reads a real Dovecot
(oauth2 passdb, asking the token server's introspection endpoint on every login) and sends through the
SMTP sink (AUTH XOAUTH2 checked against the same server) across several token lifetimes without a
restart. Time is the test's clock, shared by the service and the token server: tokens expire 3 s after
issue on the server's side.
"""

from __future__ import annotations

import json
import secrets
import stat
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.smtp import SmtpUnavailable
from mailkit.credentials import CommandPassword, CredentialError, StaticPassword, login_with
from mailkit.oauth2 import (
    AccessTokens,
    OAuth2Error,
    RefreshTokenFile,
    client_for,
    finish_device_login,
    start_device_login,
)
from matcher.clock import FakeClock
from tests.servers import Dovecot, SmtpSink, TlsFiles, TokenServer
from tests.test_apply import make_message
from unmentoring import daemon
from unmentoring.cli import main
from unmentoring.config import ConfigError, load_config

START = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)
LIFETIME = 3.0  # seconds, on the token server
PROGRAMME = "programme@example.org"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def tokens(clock: FakeClock) -> Iterator[TokenServer]:
    with TokenServer(now=lambda: clock.now().timestamp(), lifetime=LIFETIME) as server:
        yield server


def custom_client(tokens: TokenServer):
    return client_for(
        "custom",
        tokens.client_id,
        device_url=tokens.device_url,
        token_url=tokens.token_url,
        scopes=["mail"],
    )


# -- the device-code flow -------------------------------------------------------------------------


def test_device_login_polls_while_pending_then_gets_a_refresh_token(
    tokens: TokenServer, clock: FakeClock
) -> None:
    tokens.pending_polls = 2
    client = custom_client(tokens)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(timedelta(seconds=seconds))

    device = start_device_login(client)
    assert device.user_code == "WDJB-MJHT" and device.verification_uri.startswith(tokens.base_url)
    assert device.device_code not in repr(device)
    grant = finish_device_login(client, device, now=clock.now, sleep=sleep)
    assert waits == [5, 5]  # the interval the server asked for, once per authorization_pending
    assert grant.refresh_token in tokens.refresh and tokens.active_user(grant.access_token)
    assert grant.expires_at == clock.now() + timedelta(seconds=LIFETIME)
    assert grant.access_token not in repr(grant) and grant.refresh_token not in repr(grant)
    polls = [form for path, form in tokens.requests if path == "/token"]
    assert len(polls) == 3 and all(p["client_id"] == tokens.client_id for p in polls)


def test_device_login_that_is_never_completed_ends_with_one_line(
    tokens: TokenServer, clock: FakeClock
) -> None:
    tokens.pending_polls = 10_000
    client = custom_client(tokens)
    device = start_device_login(client)
    with pytest.raises(OAuth2Error, match="not completed in time: run `unmentoring auth login` again"):
        finish_device_login(
            client, device, now=clock.now, sleep=lambda s: clock.advance(timedelta(seconds=s))
        )


def test_auth_login_command_stores_the_refresh_token_privately(tmp_path: Path, tokens: TokenServer) -> None:
    config = tmp_path / "unmentoring.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [programme]
            data_dir = "data"
            [oauth2]
            provider = "custom"
            client_id = "{tokens.client_id}"
            device_url = "{tokens.device_url}"
            token_url = "{tokens.token_url}"
            scopes = ["mail"]
            """
        )
    )
    result = CliRunner().invoke(main, ["--config", str(config), "auth", "login"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"open {tokens.base_url}/activate and enter the code WDJB-MJHT" in result.output
    token_file = tmp_path / "data" / "oauth2-token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    refresh = json.loads(token_file.read_text())["refresh_token"]
    assert refresh in tokens.refresh and refresh not in result.output


# -- access tokens ----------------------------------------------------------------------------------


def test_access_tokens_are_cached_and_refreshed_before_they_expire(
    tmp_path: Path, tokens: TokenServer, clock: FakeClock
) -> None:
    client = custom_client(tokens)
    store = RefreshTokenFile(tmp_path / "data" / "oauth2-token.json")
    store.save(client, tokens.sign_in("alice"))
    access = AccessTokens(client, store, now=clock.now)
    first = access.secret()
    assert access.secret() == first and access.refreshes == 1  # cached
    clock.advance(timedelta(seconds=1))
    assert access.secret() == first
    clock.advance(timedelta(seconds=1))  # within the margin before expiry (half of a 3 s lifetime)
    second = access.secret()
    assert second != first and access.refreshes == 2
    assert tokens.active_user(second) == "alice"
    # The server rotated the refresh token: the stored one is the newest, and it still works.
    assert store.load(client) in tokens.refresh
    assert access.renew() and access.secret() not in (first, second)
    assert not any(secret in repr(access) for secret in (first, second, store.load(client)))


def test_a_revoked_refresh_token_is_one_clear_line(
    tmp_path: Path, tokens: TokenServer, clock: FakeClock
) -> None:
    client = custom_client(tokens)
    store = RefreshTokenFile(tmp_path / "oauth2-token.json")
    store.save(client, tokens.sign_in("alice"))
    tokens.revoke_refresh_tokens()
    with pytest.raises(OAuth2Error) as caught:
        AccessTokens(client, store, now=clock.now).secret()
    message = str(caught.value)
    assert message == (
        f"the OAuth2 refresh token was refused by {tokens.token_url} (revoked or expired): "
        "run `unmentoring auth login` again"
    )


def test_no_sign_in_yet_says_what_to_run(tmp_path: Path, tokens: TokenServer, clock: FakeClock) -> None:
    store = RefreshTokenFile(tmp_path / "oauth2-token.json")
    with pytest.raises(OAuth2Error, match="not signed in yet .* run `unmentoring auth login`"):
        AccessTokens(custom_client(tokens), store, now=clock.now).secret()


# -- password_command -------------------------------------------------------------------------------


def test_password_command_uses_the_first_line_and_no_shell(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    command = CommandPassword(
        [
            sys.executable,
            "-c",
            "import sys; print(sys.argv[1]); print('second line')",
            f"s3cret;touch {marker}",
        ],
        server="IMAP server imap.example.org",
    )
    assert command.secret() == f"s3cret;touch {marker}"
    assert not marker.exists()


def test_a_failing_password_command_names_the_server_and_status_never_the_output() -> None:
    command = CommandPassword(
        [sys.executable, "-c", "print('half-of-the-secret'); raise SystemExit(3)"],
        server="SMTP server smtp.example.org",
    )
    with pytest.raises(CredentialError) as caught:
        command.secret()
    message = str(caught.value)
    assert "SMTP server smtp.example.org" in message and "exit status 3" in message
    assert "half-of-the-secret" not in message and "\n" not in message


def test_a_missing_password_program_is_one_line() -> None:
    command = CommandPassword(["/nonexistent/pass"], server="IMAP server i.example.org")
    with pytest.raises(
        CredentialError, match=r"^password_command for IMAP server i.example.org .*no such program$"
    ):
        command.secret()


def test_login_with_retries_once_only_when_the_secret_changed() -> None:
    tried: list[str] = []

    def refuse(secret: str) -> None:
        tried.append(secret)
        raise PermissionError(secret)

    with pytest.raises(PermissionError):
        login_with(StaticPassword("pw"), refuse, PermissionError)
    assert tried == ["pw"]  # a fixed password is not worth a second refusal


# -- configuration ----------------------------------------------------------------------------------

GOOD_SERVERS = (
    '[imap]\nhost = "i.example.org"\nusername = "u"\n[smtp]\nhost = "s.example.org"\nusername = "u"\n'
)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[imap]\nhost = "i.example.org"\nauth = "xoauth2"\n[smtp]\nhost = "s"\n', "imap.auth", "'oauth2'"),
        (
            '[imap]\nhost = "i.example.org"\nauth = "oauth2"\n[smtp]\nhost = "s"\n',
            "oauth2",
            "[oauth2] section",
        ),
        (
            '[imap]\nhost = "i"\npassword_command = "pass show x"\n[smtp]\nhost = "s"\n',
            "imap.password_command",
            "list of strings",
        ),
        (
            '[imap]\nhost = "i"\npassword_command = ["pass"]\npassword_env = "HOME"\n[smtp]\nhost = "s"\n',
            "imap.password_command",
            "not both",
        ),
        ('[oauth2]\nprovider = "yahoo"\nclient_id = "x"\n', "oauth2.provider", "microsoft, google, custom"),
        ('[oauth2]\nprovider = "google"\n', "oauth2.client_id", "client) id"),
        ('[oauth2]\nprovider = "custom"\nclient_id = "x"\n', "oauth2.device_url", "provider = 'custom'"),
        (
            '[oauth2]\nprovider = "custom"\nclient_id = "x"\ndevice_url = "http://idp.example.org/d"\n'
            'token_url = "https://idp.example.org/t"\nscopes = ["mail"]\n',
            "oauth2.device_url",
            "https://",
        ),
        ('[oauth2]\nclient_id = "x"\nclient_secret = "inline"\n', "oauth2.client_secret", "unknown key"),
    ],
)
def test_auth_configuration_errors_name_the_file_and_key(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = tmp_path / "unmentoring.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HOME": "/root"})
    assert caught.value.key == key and expected in caught.value.problem and str(path) in str(caught.value)


def test_an_unset_client_secret_is_needed_only_to_sign_in_or_connect(tmp_path: Path) -> None:
    path = tmp_path / "unmentoring.toml"
    path.write_text('[oauth2]\nclient_id = "x"\nclient_secret_env = "UM_SURELY_UNSET_SECRET"\n')
    config = load_config(path, {"HOME": "/root"})  # status, members... work
    assert config.missing_env == (("oauth2.client_secret_env", "UM_SURELY_UNSET_SECRET"),)
    with pytest.raises(ConfigError) as caught:
        config.require_secrets("oauth2")  # auth login, run, tick
    assert caught.value.key == "oauth2.client_secret_env" and "not set" in caught.value.problem


def test_client_secret_comes_from_the_environment_and_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "unmentoring.toml"
    path.write_text(
        GOOD_SERVERS.replace('username = "u"\n', 'username = "u"\nauth = "oauth2"\n')
        + '[oauth2]\nprovider = "google"\nclient_id = "x"\nclient_secret_env = "UM_SECRET"\n'
    )
    config = load_config(path, {"UM_SECRET": "shh-client-secret"})
    assert config.oauth2 is not None and config.oauth2.client_secret == "shh-client-secret"
    assert "shh-client-secret" not in json.dumps(config.masked()) and "shh" not in repr(config)
    assert config.imap is not None and config.imap.mechanism == "xoauth2"


# -- the service against real servers ---------------------------------------------------------------


@pytest.fixture
def oauth_dovecot(test_tls: TlsFiles, tokens: TokenServer) -> Iterator[Dovecot]:
    """A private Dovecot whose XOAUTH2/OAUTHBEARER logins ask the token server, uncached."""
    server = Dovecot(test_tls, oauth2_introspection_url=tokens.introspection_url)
    try:
        server.start()
        # A mailbox to deliver to; its password is never used (the passwd-file refuses tokens).
        server.add_user("programme", secrets.token_urlsafe(12))
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def oauth_sink(tokens: TokenServer) -> Iterator[SmtpSink]:
    with SmtpSink(oauth2=tokens) as sink:  # each message records who authenticated
        yield sink


def write_service_config(
    root: Path, dovecot: Dovecot, sink: SmtpSink, tokens: TokenServer, user: str
) -> Path:
    path = root / "unmentoring.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [programme]
            address = "{PROGRAMME}"
            organisers = ["organiser@example.org"]
            data_dir = "data"

            [imap]
            host = "127.0.0.1"
            port = {dovecot.imap_port}
            security = "starttls"
            ca_file = "{dovecot.ca_file}"
            username = "{user}"
            auth = "oauth2"
            timeout = 10

            [smtp]
            host = "127.0.0.1"
            port = {sink.port}
            security = "none"
            username = "{user}"
            auth = "oauth2"
            per_minute = 0
            per_day = 0

            [oauth2]
            provider = "custom"
            client_id = "{tokens.client_id}"
            device_url = "{tokens.device_url}"
            token_url = "{tokens.token_url}"
            scopes = ["mail"]
            """
        )
    )
    return path


def replies_to(sink: SmtpSink, address: str) -> list[bytes]:
    return [m.raw for m in sink.messages if address in m.rcpt_tos]


@pytest.mark.parametrize(
    "advertised", [LIFETIME, 3600.0], ids=["refresh-before-expiry", "refresh-after-refusal"]
)
def test_the_service_reads_and_sends_across_several_token_lifetimes(
    tmp_path: Path,
    oauth_dovecot: Dovecot,
    oauth_sink: SmtpSink,
    tokens: TokenServer,
    clock: FakeClock,
    advertised: float,
) -> None:
    """With advertised == LIFETIME the service renews each token before it expires; with an hour
    advertised but 3 s real, every login first meets a refusal and the service renews then."""
    tokens.advertised = advertised
    user = "programme"
    config = load_config(write_service_config(tmp_path, oauth_dovecot, oauth_sink, tokens, user), {})
    RefreshTokenFile(tmp_path / "data" / "oauth2-token.json").save(
        custom_client(tokens), tokens.sign_in(user)
    )
    passes = daemon.Passes(config, clock)
    try:
        for lifetime in range(4):
            sender = f"person{lifetime}@example.org"
            oauth_dovecot.deliver(user, make_message(sender, "Please sign me up", "join", to=PROGRAMME))
            if lifetime:
                oauth_dovecot.kick(user)  # providers drop idle connections: the next pass logs in again
            passes.tick()
            replies = replies_to(oauth_sink, sender)
            assert replies, f"no reply to {sender} in token lifetime {lifetime}"
            message = message_from_bytes(replies[0])
            assert parseaddr(message["From"])[1] == PROGRAMME
            assert all(m.authenticated_as == user for m in oauth_sink.messages)
            clock.advance(timedelta(seconds=LIFETIME + 1))  # every token issued so far is now dead
        assert oauth_dovecot.list_folder(user) == []  # everything read and filed
        assert tokens.issued >= 8  # a fresh token for IMAP and for SMTP in each lifetime
        assert tokens.introspections >= 4  # Dovecot asked the token server at each IMAP login
        if advertised == LIFETIME:
            assert tokens.refused == 0  # renewed in time: no server ever saw an expired token
        else:
            assert tokens.refused >= 3  # the kept IMAP connection's token, refused at each new login
    finally:
        passes.close()


def test_a_revoked_refresh_token_stops_the_service_with_one_line(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_sink: SmtpSink, tokens: TokenServer, clock: FakeClock
) -> None:
    user = "programme"
    config = load_config(write_service_config(tmp_path, oauth_dovecot, oauth_sink, tokens, user), {})
    RefreshTokenFile(tmp_path / "data" / "oauth2-token.json").save(
        custom_client(tokens), tokens.sign_in(user)
    )
    tokens.revoke_refresh_tokens()
    passes = daemon.Passes(config, clock)
    try:
        imap_line = passes.tick().inbox_error  # the pass goes on without the inbox, and says why

        def connect(app):
            with app.smtp_sender() as sender:
                sender.connect()

        with pytest.raises(SmtpUnavailable) as smtp_caught:
            passes.run(connect)
        smtp_line = str(smtp_caught.value)
    finally:
        passes.close()
    for line, server in ((imap_line, f"IMAP {user} at 127.0.0.1"), (smtp_line, "SMTP server 127.0.0.1")):
        assert server in line and "\n" not in line
        assert "refresh token was refused" in line and "run `unmentoring auth login` again" in line
