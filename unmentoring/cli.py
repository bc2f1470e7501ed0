"""The organiser's command line: `unmentoring --help`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from matcher.store import StoreCorrupt, StoreError, StoreLocked
from unmentoring.config import Config, ConfigError, find_config_path, load_config

EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_STORE = 4


class Context:
    """What every command needs, loaded on first use so `--help` works without a valid config."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config_path(self.config_path, os.environ))
        return self._config


pass_context = click.make_pass_decorator(Context)


class Group(click.Group):
    """Turns the errors an organiser can act on into one line and a documented exit code."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except StoreLocked as exc:
            click.echo(f"unmentoring is {exc}", err=True)
            sys.exit(EXIT_LOCKED)
        except (StoreCorrupt, StoreError) as exc:
            click.echo(f"database error: {exc}", err=True)
            sys.exit(EXIT_STORE)


@click.group(cls=Group)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    envvar="UNMENTORING_CONFIG",
    help="The configuration file (default: ./unmentoring.toml, else the built-in sandbox).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """UnMentoring by email: Randomised Coffee Trials run entirely over email."""
    ctx.obj = Context(config_path)


@main.command("check-config")
@pass_context
def check_config(context: Context) -> None:
    """Check the configuration and print it, with secrets masked."""
    click.echo(json.dumps(context.config.masked(), indent=2, default=str))


def config_path_of(context: Context) -> Path | None:
    return find_config_path(context.config_path, os.environ)
