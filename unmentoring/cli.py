"""The organiser's command line: `unmentoring --help`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from unmentoring.cli_auth import make_auth_group
from unmentoring.cli_members import make_members_group
from unmentoring.cli_report import make_report_group
from unmentoring.cli_rounds import (
    make_outbox_group,
    make_round_group,
    make_status_command,
    make_summary_command,
)
from unmentoring.cli_schedule import make_skip_command
from unmentoring.config import Config, ConfigError, Mode, find_config_path, load_config
from unmentoring.sandbox_cli import make_sandbox_group

if TYPE_CHECKING:  # what a command needs is imported by that command: those that draw nothing start fast
    from mailer.template_check import TemplateReport
    from unmentoring.app import App

EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_STORE = 4
EXIT_SERVER = 5
EXIT_MAIL = 6  # tick: the inbox or the SMTP server could not be used (the rest of the pass was done)


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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except Exception as exc:
            # Imported only now: `--help` and the commands that open no database start without them.
            from matcher.store import StoreError, StoreLocked

            if isinstance(exc, StoreLocked):
                click.echo(f"unmentoring is {exc}", err=True)
                sys.exit(EXIT_LOCKED)
            if isinstance(exc, StoreError):  # StoreCorrupt among them
                click.echo(f"database error: {exc}", err=True)
                sys.exit(EXIT_STORE)
            # Only a command that ran a mail server of its own can have loaded the module (and raised it).
            receiving = sys.modules.get("inbox.receiving")
            if receiving is None or not isinstance(exc, receiving.MailServerStartError):
                raise
            click.echo(f"cannot start: {exc}", err=True)
            sys.exit(EXIT_SERVER)


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
    """Check the configuration and print it, with secrets masked; render every template with sample data."""
    config = context.config
    click.echo(json.dumps(config.masked(), indent=2, default=str))
    for key, variable in config.missing_env:
        click.echo(
            f"warning: {key}: environment variable {variable} is not set; `run`, `tick` and commands that "
            "send mail need it",
            err=True,
        )
    report = templates_render(config)
    if report.errors:
        sys.exit(EXIT_CONFIG)
    own = f"; yours: {', '.join(report.overridden)}" if report.overridden else ""
    click.echo(f"templates: every kind renders with sample values{own}", err=True)


def templates_render(config: Config) -> TemplateReport:
    """Render every template with sample values, saying on stderr what is wrong (file and line) and what
    looks unintended. `run` and `tick` check too: a broken override must stop the start, not fail a
    member's mail later."""
    from mailer.settings import mail_settings_from_config
    from mailer.template_check import check_templates

    report = check_templates(mail_settings_from_config(config))
    own_folder = config.templates_dir or Path()
    for name in report.unused:
        click.echo(f"warning: {_shown(own_folder / name)} replaces no shipped template", err=True)
    for kind in report.half:
        click.echo(
            f"warning: {kind}.txt and {kind}.html are the plain and HTML parts of one mail;"
            " only one is yours, so the other keeps the shipped wording",
            err=True,
        )
    for error in report.errors:
        where = _shown(error.path) if error.path else f"{error.template} (shipped)"
        click.echo(where + (f" line {error.line}" if error.line else "") + f": {error.problem}", err=True)
    return report


def _shown(path: Path) -> str:
    """A file as the organiser would type it: relative to the current folder when inside it."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


@main.command()
@click.option("--poll-seconds", type=click.IntRange(1), help="Override how often the inbox is read.")
@pass_context
def run(context: Context, poll_seconds: int | None) -> None:
    """Run the service until SIGTERM or Ctrl-C: read mail, run the rounds, send mail."""
    from inbox.lmtp import LmtpServer
    from unmentoring import daemon
    from unmentoring.app import App
    from unmentoring.sandbox import SandboxServer, banner

    setup_logging()
    config = context.config
    config.require_secrets()
    if templates_render(config).errors:
        sys.exit(EXIT_CONFIG)
    stop = threading.Event()
    daemon.install_stop_handlers(stop)
    with contextlib.ExitStack() as stack:
        lock = daemon.start_service(config)
        stack.callback(lock.release)
        App.open(config).close()  # check the database before listening for mail
        listener = config.listener()
        if listener is not None:
            # The sandbox server fills the whole sandbox folder (people's mailboxes too); LMTP, the spool.
            server_class, folder = (
                (SandboxServer, config.sandbox_dir)
                if listener.mode is Mode.SANDBOX
                else (LmtpServer, listener.maildir)
            )
            server = server_class(
                folder,
                config.programme.address,
                listener.host,
                listener.port,
                max_message_bytes=config.limits.max_message_bytes,
            )
            server.start()
            stack.callback(server.stop)
            if listener.mode is Mode.SANDBOX:
                click.echo(banner(config))
            else:
                click.echo(
                    f"LMTP server listening on {listener.host}:{listener.port} for {config.programme.address}"
                )
        passes = daemon.Passes(config)
        stack.callback(passes.close)
        interval = poll_seconds or (config.imap.poll_seconds if config.imap else 1)
        click.echo(f"unmentoring running ({config.mode} mode, data in {config.data_dir}); Ctrl-C stops it")
        code = daemon.run_forever(passes, stop, poll_seconds=interval)
    sys.exit(code)


@main.command()
@pass_context
def tick(context: Context) -> None:
    """Do one pass (read mail, run due round steps, send mail) and exit: for cron or a systemd timer.

    A mail server that cannot be used is named on stderr in one line (with the fix), the rest of the pass
    is done, and the exit status is 6."""
    from unmentoring import daemon

    setup_logging()
    context.config.require_secrets()
    if templates_render(context.config).errors:
        sys.exit(EXIT_CONFIG)
    stop = threading.Event()
    daemon.install_stop_handlers(stop)
    lock = daemon.start_service(context.config)
    passes = None
    try:
        passes = daemon.Passes(context.config, backoff=False)
        report = passes.tick(stop.is_set)
    finally:
        if passes is not None:
            passes.close()
        lock.release()
    for line in report.lines():
        click.echo(line)
    failures = report.failures()
    for line in failures:
        click.echo(f"error: {line}", err=True)
    if failures:
        sys.exit(EXIT_MAIL)


@main.command()
@click.argument("messages", nargs=-1, required=True, type=click.Path(allow_dash=True, path_type=Path))
@pass_context
def explain(context: Context, messages: tuple[Path, ...]) -> None:
    """Show how the service reads each MESSAGE (an .eml file, a folder of them, or - for standard
    input), changing nothing: one JSON object, or with several messages one per line, each naming
    its "file". With the programme's database, "context" says which round and group it answers."""
    from inbox.explain import explain as explain_message
    from matcher.store import Store
    from unmentoring.app import STORE_WAIT_SECONDS

    config = context.config
    own = [config.programme.address]
    limit = config.limits.max_message_bytes
    too_large = (
        f"larger than limits.max_message_bytes ({limit} bytes): the service ignores such mail unread, "
        "so there is nothing to explain"
    )
    files = [found for given in messages for found in _message_files(given)]
    single = len(messages) == 1 and len(files) == 1 and not messages[0].is_dir()
    database = config.database_path
    store = Store.open(database, wait=STORE_WAIT_SECONDS) if database.exists() else None
    failed = False
    try:
        for path in files:
            result: dict[str, object] = {"file": str(path)}
            try:
                raw = _read_at_most(path, limit + 1)  # never more: a huge input costs no more than a refusal
            except OSError as exc:
                failed = True
                result["error"] = f"cannot be read ({exc.strerror or exc.__class__.__name__})"
            else:
                if len(raw) > limit:
                    if single:
                        raise click.ClickException(f"{path}: {too_large}")
                    failed = True
                    result["error"] = too_large
                else:
                    result.update(explain_message(raw, own_addresses=own, store=store))
            click.echo(json.dumps(result, indent=2 if single else None, ensure_ascii=False))
    finally:
        if store is not None:
            store.close()
    if failed:
        raise SystemExit(1)


def _read_at_most(path: Path, size: int) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read(size)
    with path.open("rb") as file:
        return file.read(size)


def _message_files(given: Path) -> list[Path]:
    """A file as given ("-" included); a folder: every file under it, hidden ones left out, in order."""
    if not given.is_dir():
        return [given]
    return sorted(
        path
        for path in given.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(given).parts)
    )


@main.command()
@click.option("--people", type=click.IntRange(2, 200), default=30, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 12), default=2, show_default=True)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the demo's data (default: a fresh temp folder).",
)
def demo(people: int, rounds: int, folder: Path | None) -> None:
    """Simulate a small programme on the sandbox in seconds: joins, rounds, replies, a summary."""
    from unmentoring.demo import new_demo_dir, run_demo

    folder = folder or new_demo_dir()
    click.echo(f"demo data in {folder}")
    summary = run_demo(folder, people=people, rounds=rounds, say=click.echo)
    click.echo(f"summary email : {summary / 'summary.eml'}")
    for png in sorted(summary.glob("*.png")):
        click.echo(f"picture       : {png}")
    click.echo(f"everyone's mail (Maildirs): {folder / 'sandbox' / 'mailboxes'}")


def open_app() -> App:
    """The App for the current command's configuration (the caller closes it)."""
    from unmentoring.app import STORE_WAIT_SECONDS, App

    context = click.get_current_context().find_object(Context)
    assert context is not None
    # a running service holds the database only for a pass: wait for it rather than refuse
    return App.open(context.config, wait=STORE_WAIT_SECONDS)


def current_config() -> Config:
    context = click.get_current_context().find_object(Context)
    assert context is not None
    return context.config


main.add_command(make_status_command(open_app), "status")
main.add_command(make_members_group(open_app), "members")
main.add_command(make_round_group(open_app), "round")
main.commands["round"].add_command(make_skip_command(open_app))  # type: ignore[attr-defined]
main.add_command(make_outbox_group(open_app), "outbox")
main.add_command(make_summary_command(open_app), "summary")
main.add_command(make_report_group(open_app), "report")
main.add_command(make_sandbox_group(current_config), "sandbox")
main.add_command(make_auth_group(current_config), "auth")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
