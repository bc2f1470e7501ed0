"""Shared pytest fixtures. Server helpers live in tests/servers.py."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.cli_env import PROGRAMME_ADDRESS, CliEnv
from tests.servers import (
    Dovecot,
    ImapAccount,
    SmtpSink,
    TlsFiles,
    free_port,
    make_server_dir,
    make_tls_files,
)
from tests.test_apply import Harness, make_harness
from unmentoring.sandbox import SandboxServer

# -- real mail servers (tests/servers.py) --------------------------------------------------------


@pytest.fixture(scope="session")
def test_tls() -> Iterator[TlsFiles]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, shared by the servers."""
    directory = make_server_dir("umtls-")
    try:
        yield make_tls_files(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(test_tls: TlsFiles) -> Iterator[Dovecot]:
    """A private Dovecot on 127.0.0.1 (IMAP with STARTTLS, and IMAPS). A start failure is an
    ERROR carrying Dovecot's log, never a skip."""
    server = Dovecot(test_tls)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A fresh Dovecot user with an empty mailbox, so tests never see each other's mail."""
    dovecot.start()  # a previous test may have stopped it on purpose
    user = f"u{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(12)
    dovecot.add_user(user, password)
    return ImapAccount(dovecot, user, password)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP sink on 127.0.0.1 that stores every message it accepts."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def make_smtp_sink(test_tls: TlsFiles) -> Iterator[Callable[..., SmtpSink]]:
    """Start sinks with options (starttls=True, implicit_tls=True, auth=(user, password),
    store=False, ...); TLS uses the session's test certificate. All are stopped afterwards."""
    started: list[SmtpSink] = []

    def make(**options: object) -> SmtpSink:
        options.setdefault("tls", test_tls)
        sink = SmtpSink(**options).start()  # type: ignore[arg-type]
        started.append(sink)
        return sink

    try:
        yield make
    finally:
        for sink in started:
            sink.stop()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Harness]:
    """A store and processor for the inbox tests (tests/test_apply.py's harness), closed afterwards."""
    harness = make_harness(tmp_path)
    try:
        yield harness
    finally:
        harness.store.close()


@pytest.fixture
def env(tmp_path: Path) -> CliEnv:
    """A programme folder for the CLI, its sandbox on a free port (a module may override it)."""
    return CliEnv(tmp_path / "programme", sandbox_port=free_port())


@pytest.fixture
def sandbox(env: CliEnv) -> Iterator[SandboxServer]:
    """The product's sandbox mail server on the env's port: the CLI sends there, mail lands."""
    server = SandboxServer(env.sandbox_dir, PROGRAMME_ADDRESS, "127.0.0.1", env.sandbox_port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
