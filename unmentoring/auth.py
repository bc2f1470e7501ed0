"""How the service logs in to its mail servers, built from the configuration: a password from the
environment, a password from a command, or OAuth2 access tokens from the stored refresh token."""

from __future__ import annotations

from pathlib import Path

from mailkit.credentials import CommandPassword, Credential, StaticPassword
from matcher.clock import Clock
from unmentoring.config import Config, Imap, Smtp

TOKEN_FILE = "oauth2-token.json"  # in the data folder


def token_file_path(config: Config) -> Path:
    return config.data_dir / TOKEN_FILE


def oauth2_client(config: Config):
    """The [oauth2] section as the protocol module's client (None without the section)."""
    from mailkit.oauth2 import client_for  # only configurations that use OAuth2 pay for oauthlib

    o = config.oauth2
    if o is None:
        return None
    return client_for(
        o.provider,
        o.client_id,
        tenant=o.tenant,
        client_secret=o.client_secret,
        device_url=o.device_url,
        token_url=o.token_url,
        scopes=o.scopes,
    )


def server_credential(config: Config, section: Imap | Smtp, kind: str, clock: Clock) -> Credential:
    """What ``section`` (the [imap] or [smtp] server; ``kind`` "IMAP" or "SMTP") logs in with."""
    if section.auth == "oauth2":
        from mailkit.oauth2 import AccessTokens, RefreshTokenFile

        client = oauth2_client(config)
        assert client is not None  # the configuration checks that [oauth2] exists
        return AccessTokens(client, RefreshTokenFile(token_file_path(config)), now=clock.now)
    if section.password_command:
        return CommandPassword(section.password_command, server=f"{kind} server {section.host}")
    return StaticPassword(section.password)
