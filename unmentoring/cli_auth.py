"""`unmentoring auth login`: sign the service in to Microsoft 365 or Google once (OAuth2 device code).

The person signing in opens the printed URL on any device and types the printed code; the service keeps the
refresh token in the data folder (readable by its owner only) and fetches access tokens itself from then on.
No token is ever printed.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from unmentoring.config import Config, ConfigError

CurrentConfig = Callable[[], Config]


def make_auth_group(current_config: CurrentConfig) -> click.Group:
    @click.group("auth")
    def auth() -> None:
        """Sign in to the mail provider with OAuth2 (Microsoft 365, Google)."""

    @auth.command()
    def login() -> None:
        """Sign in with a device code: prints a URL and a code, waits until you have signed in."""
        from mailkit.oauth2 import (
            OAuth2Error,
            RefreshTokenFile,
            finish_device_login,
            start_device_login,
        )
        from matcher.clock import SystemClock
        from unmentoring.auth import oauth2_client, token_file_path

        config = current_config()
        config.require_secrets("oauth2")
        client = oauth2_client(config)
        if client is None:
            raise ConfigError(config.source, "oauth2", "expected an [oauth2] section to sign in with")
        store = RefreshTokenFile(token_file_path(config))
        try:
            device = start_device_login(client)
            click.echo(f"To sign in, open {device.verification_uri} and enter the code {device.user_code}")
            click.echo(f"(the code is valid for {device.expires_in // 60} minutes; waiting...)")
            grant = finish_device_login(client, device, now=SystemClock().now)
        except OAuth2Error as exc:
            click.echo(f"sign-in failed: {exc}", err=True)
            raise SystemExit(1) from None
        if not grant.refresh_token:
            click.echo(
                "sign-in failed: the provider gave no refresh token (for Microsoft, include offline_access "
                "in [oauth2] scopes)",
                err=True,
            )
            raise SystemExit(1)
        store.save(client, grant.refresh_token)
        click.echo(f"Signed in. The refresh token is kept in {store.path} (readable by you only).")

    return auth
