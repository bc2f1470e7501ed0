"""In the field: a failing mail server costs only its own part of a pass and says what is wrong in one line;
secrets are needed only by the commands that connect; dates agree after a round started by hand.

Against the suite's real Dovecot (stopped, wrong password, self-signed certificate) and SMTP sink.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from matcher.calendar import next_round, round_dates_for_id
from matcher.store import StoreLocked
from tests.helpers.cli_env import CliEnv, describe
from tests.servers import Dovecot, ImapAccount, SmtpSink, free_port
from unmentoring import daemon
from unmentoring.app import App
from unmentoring.cli import EXIT_CONFIG, EXIT_MAIL, main
from unmentoring.config import load_config

SECRET_VARIABLE = "UM_TEST_IMAP_PASSWORD"


def production_config(
    folder: Path, account: ImapAccount, sink: SmtpSink, *, security: str = "none", ca_file: str = ""
) -> Path:
    port = account.imaps_port if security == "ssl" else account.imap_port
    path = folder / "unmentoring.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [programme]
            address = "unmentoring@example.org"
            organisers = ["organiser@example.org"]
            data_dir = "data"

            [imap]
            host = "127.0.0.1"
            port = {port}
            security = "{security}"
            ca_file = "{ca_file}"
            username = "{account.user}"
            password_env = "{SECRET_VARIABLE}"
            timeout = 5

            [smtp]
            host = "{sink.host}"
            port = {sink.port}
            security = "none"
            per_minute = 0
            per_day = 0
            """
        ),
        encoding="utf-8",
    )
    return path


def invoke(config: Path, *args: str, password: str | None = None) -> Result:
    env = {} if password is None else {SECRET_VARIABLE: password}
    runner = CliRunner(env={SECRET_VARIABLE: None, **env})
    return runner.invoke(main, ["--config", str(config), *args], catch_exceptions=True)


def ok(config: Path, *args: str, password: str | None = None) -> Result:
    result = invoke(config, *args, password=password)
    assert result.exit_code == 0, describe(result, args)
    return result


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """A clear failure: exit 6, no traceback, one stderr line naming the server and each fragment."""
    assert result.exit_code == EXIT_MAIL, describe(result)
    assert isinstance(result.exception, SystemExit), describe(result)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def programme(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Path:
    return production_config(tmp_path, imap_account, smtp_sink)


# -- 4. failures are isolated, and loud -------------------------------------------------------------


def test_with_dovecot_stopped_tick_still_sends_and_says_why_in_one_line(
    programme: Path, imap_account: ImapAccount, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    ok(programme, "members", "add", "alice@example.org", "--name", "Alice")  # queues her welcome
    dovecot.stop()
    try:
        result = invoke(programme, "tick", password=imap_account.password)
    finally:
        dovecot.start()
    line = assert_one_line_error(result, f"127.0.0.1:{imap_account.imap_port}", "Connection refused")
    assert "failed after 3 attempts" in line
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [("alice@example.org",)]
    assert "outbox: 1 sent" in result.stdout
    assert "DeliveryReport" not in result.output and "PollReport" not in result.output

    status = json.loads(ok(programme, "status", "--json").stdout)
    assert status["inbox"]["failing_since"] is not None
    assert "Connection refused" in status["inbox"]["reason"]
    assert status["sending"]["failing_since"] is None and status["sending"]["last_ok"] is not None
    text = ok(programme, "status").stdout
    assert re.search(
        r"^inbox: failing since \d{4}-\d\d-\d\d \d\d:\d\d UTC \(.*Connection refused", text, re.M
    )
    assert re.search(r"^sending: ok, last sent \d{4}-", text, re.M)

    # back up: the next pass reads the inbox and the failure is over
    ok(programme, "tick", password=imap_account.password)
    status = json.loads(ok(programme, "status", "--json").stdout)
    assert status["inbox"]["failing_since"] is None and status["inbox"]["last_ok"] is not None


def test_a_wrong_password_is_one_line_naming_the_server_and_the_fix(
    programme: Path, imap_account: ImapAccount
) -> None:
    result = invoke(programme, "tick", password="not-" + imap_account.password)
    line = assert_one_line_error(result, f"127.0.0.1:{imap_account.imap_port}", "login refused")
    assert "check the password ([imap] password_env or password_command)" in line
    assert "not-" + imap_account.password not in result.output


def test_a_self_signed_certificate_is_one_line_naming_ca_file(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = production_config(tmp_path, imap_account, smtp_sink, security="ssl")
    result = invoke(config, "tick", password=imap_account.password)
    assert_one_line_error(
        result, f"127.0.0.1:{imap_account.imaps_port}", "certificate verify failed", "set [imap] ca_file"
    )
    # the fix the line names works
    fixed = production_config(tmp_path, imap_account, smtp_sink, security="ssl", ca_file=imap_account.ca_file)
    ok(fixed, "tick", password=imap_account.password)


def test_a_failing_inbox_is_retried_without_holding_the_database(
    programme: Path, imap_account: ImapAccount, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, imap_account.password)
    config = load_config(programme)
    opened_between_attempts: list[bool] = []

    def between_attempts(_seconds: float) -> None:
        # Each wait between connection attempts: the organiser's commands must get the database now.
        try:
            App.open(config, wait=0).close()
        except StoreLocked:
            opened_between_attempts.append(False)
        else:
            opened_between_attempts.append(True)

    passes = daemon.Passes(config, sleep=between_attempts)
    dovecot.stop()
    try:
        report = passes.tick()
    finally:
        passes.close()
        dovecot.start()
    assert opened_between_attempts == [True] * (daemon.INBOX_CONNECT_ATTEMPTS - 1)
    assert "Connection refused" in report.inbox_error
    assert report.delivery is not None  # the outbox ran all the same


# -- 5. secrets only where needed ----------------------------------------------------------------------


def test_commands_that_connect_to_no_server_work_without_the_password(
    programme: Path, tmp_path: Path
) -> None:
    message = tmp_path / "m.eml"
    message.write_bytes(
        b"From: a@example.org\r\nTo: unmentoring@example.org\r\nSubject: join\r\n\r\njoin\r\n"
    )
    checked = ok(programme, "check-config")
    assert f"warning: imap.password_env: environment variable {SECRET_VARIABLE} is not set" in checked.stderr
    ok(programme, "status")
    ok(programme, "members", "list")
    ok(programme, "round", "preview")
    ok(programme, "explain", str(message))

    for args in (("tick",), ("round", "start")):
        refused = invoke(programme, *args)
        assert refused.exit_code == EXIT_CONFIG, describe(refused, args)
        assert f"imap.password_env: environment variable {SECRET_VARIABLE} is not set" in refused.stderr
    assert json.loads(ok(programme, "status", "--json").stdout)["latest_round"] is None  # nothing started


# -- 7. machine-readable output --------------------------------------------------------------------


def test_json_output_of_status_members_rounds_and_outbox(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "programme", sandbox_port=free_port())
    for name in ("alice", "bob", "carol"):
        env.ok("members", "add", f"{name}@example.org", "--name", name.title())
    env.ok("round", "start", "--no-send")
    members = json.loads(env.ok("members", "list", "--json").stdout)
    assert [(m["address"], m["status"]) for m in members] == [
        (f"{n}@example.org", "active") for n in ("alice", "bob", "carol")
    ]
    shown = json.loads(env.ok("round", "show", "--json").stdout)
    assert sorted(m["address"] for g in shown["groups"] for m in g["members"]) == [
        f"{n}@example.org" for n in ("alice", "bob", "carol")
    ]
    outbox = json.loads(env.ok("outbox", "list", "--json").stdout)
    assert {(e["kind"], e["status"]) for e in outbox} == {("welcome", "queued"), ("intro", "queued")}
    status = json.loads(env.ok("status", "--json").stdout)
    assert status["latest_round"] == shown["id"] and status["members"]["active"] == 3


# -- 8. dates that agree ---------------------------------------------------------------------------


def test_after_a_round_started_by_hand_the_next_round_is_the_one_after_it(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "programme", sandbox_port=free_port())
    for name in ("alice", "bob"):
        env.ok("members", "add", f"{name}@example.org")
    env.ok("round", "start", "--no-send")
    started = json.loads(env.ok("round", "show", "--json").stdout)
    with App.open(load_config(env.config_path)) as app:
        after = next_round(app.calendar, round_dates_for_id(app.calendar, started["id"]).starts_at)
    assert after.round_id > started["id"]
    assert env.status()["next_round_on"] == after.starts_on.isoformat()


@pytest.mark.parametrize("step", ["followup", "close"])
def test_followup_and_close_before_the_meeting_week_ends_warn_and_need_force(
    tmp_path: Path, step: str
) -> None:
    env = CliEnv(tmp_path / "programme", sandbox_port=free_port())
    for name in ("alice", "bob"):
        env.ok("members", "add", f"{name}@example.org")
    env.ok("round", "start", "--no-send")  # the round whose meeting week is still to come or under way
    refused = env.invoke("round", step, "--no-send")
    assert refused.exit_code == 1, describe(refused)
    assert "meeting week runs until" in refused.stderr and "--force" in refused.stderr
    shown = json.loads(env.ok("round", "show", "--json").stdout)
    assert shown["steps_done"] == ["intros"] and shown["state"] == "started"
    forced = env.ok("round", step, "--no-send", "--force")
    assert "meeting week runs until" in forced.stderr
    assert len(json.loads(env.ok("round", "show", "--json").stdout)["steps_done"]) > 1
