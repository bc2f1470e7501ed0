"""The organiser's command line, run in-process through the real click tree on temp config and data.

Delivery goes through the product's own sandbox SMTP server on a free 127.0.0.1 port, so "sent"
means a message really arrived in a Maildir.
"""

from __future__ import annotations

import csv
import email
import io
import json
import os
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from matcher.store import Store
from tests.helpers.cli_env import (
    KIND_HEADER,
    PROGRAMME_ADDRESS,
    CliEnv,
    describe,
    maildir_messages,
    messages_of_kind,
    snapshot,
    write_csv,
)
from tests.servers import free_port
from unmentoring.cli import main
from unmentoring.sandbox import SandboxServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A sign-up form's export: its own column names, plus one column the import must ignore.
FORM_HEADER = ["Timestamp", "Email Address", "Full name", "Company", "Tell us about yourself"]
FORM_ROWS = [
    [
        "2026-01-02 10:00",
        "alice@example.org",
        "Alice Smith",
        "Leeds City Council",
        "I run the digital team",
    ],
    ["2026-01-02 10:05", "bob@example.org", "Bob Jones", "NHS Digital", "Data, mostly"],
    ["2026-01-02 10:07", "carol@example.org", "Carol O'Neil", "Leeds City Council", ""],
    ["2026-01-02 10:09", "dan@example.org", "Dan Wu", "GDS", "Design systems"],
    ["2026-01-02 10:11", "erin@example.org", "Erin Kaur", "ONS", "Statistics"],
]
FORM_COLUMNS = [
    "--email-column",
    "Email Address",
    "--name-column",
    "Full name",
    "--org-column",
    "Company",
    "--about-column",
    "Tell us about yourself",
]


def import_form(env: CliEnv, rows: list[list[str]] = FORM_ROWS) -> None:
    path = write_csv(env.root / "form.csv", FORM_HEADER, rows)
    env.ok("members", "import", str(path), *FORM_COLUMNS)


def has_traceback(result) -> bool:
    return "Traceback" in result.output or (
        result.exception is not None and not isinstance(result.exception, SystemExit)
    )


# -- help --------------------------------------------------------------------------------------


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join(prefix + (name,))} is listed but cannot be loaded"
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from command_paths(command, prefix + (name,))


def test_every_command_has_help_even_with_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[programme\n", encoding="utf-8")
    paths = [(), *command_paths(main)]
    expected = (
        {("members", n) for n in ("list", "show", "add", "remove", "import", "export")}
        | {("round", n) for n in ("preview", "start", "followup", "close", "show")}
        | {
            ("outbox", "list"),
            ("outbox", "retry"),
            ("summary",),
            ("status",),
            ("run",),
            ("tick",),
            ("check-config",),
            ("explain",),
            ("demo",),
            ("sandbox", "send"),
            ("sandbox", "read"),
        }
    )
    assert expected <= set(paths), f"commands the README documents are missing: {expected - set(paths)}"
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(main, ["--config", str(broken), *path, "--help"])
        assert result.exit_code == 0, describe(result, [*path, "--help"])
        assert result.stdout.startswith("Usage:"), describe(result, [*path, "--help"])
        command = main
        for name in path:
            command = command.get_command(click.Context(command), name)
        assert (command.help or "").strip(), f"`unmentoring {' '.join(path)}` has no help text"
    assert not (tmp_path / "data").exists(), "--help must not create the data folder"


# -- members import ----------------------------------------------------------------------------


def test_import_reads_mapped_columns_and_welcomes_each_new_member(env: CliEnv) -> None:
    path = write_csv(env.root / "form.csv", FORM_HEADER, FORM_ROWS)
    result = env.ok("members", "import", str(path), *FORM_COLUMNS)
    assert "imported 5" in result.stdout

    by_address = {m["address"]: m for m in env.members()}
    assert set(by_address) == {row[1] for row in FORM_ROWS}
    for _, address, name, org, about in FORM_ROWS:
        assert (
            by_address[address]["name"],
            by_address[address]["org"],
            by_address[address]["about"],
        ) == (
            name,
            org,
            about,
        )
        assert by_address[address]["status"] == "active"
    welcomes = [row for row in env.outbox() if row[1] == "welcome"]
    assert len(welcomes) == 5 and all(row[2] == "queued" for row in welcomes)

    # Importing the same file again adds nobody and welcomes nobody twice.
    again = env.ok("members", "import", str(path), *FORM_COLUMNS)
    assert "imported 0" in again.stdout and "5 already members" in again.stdout
    assert len([row for row in env.outbox() if row[1] == "welcome"]) == 5


def test_import_dry_run_checks_everything_and_changes_nothing(env: CliEnv) -> None:
    env.ok("members", "add", "zoe@example.org", "--name", "Zoe")
    before = snapshot(env.data_dir)
    assert before, "the first command should have created the database"
    path = write_csv(env.root / "form.csv", FORM_HEADER, FORM_ROWS + [["", "zoe@example.org", "Zoe", "", ""]])

    result = env.ok("members", "import", str(path), *FORM_COLUMNS, "--dry-run")

    assert "5 to add" in result.stdout and "1 already member" in result.stdout
    assert snapshot(env.data_dir) == before
    assert [m["address"] for m in env.members()] == ["zoe@example.org"]


def test_import_with_bad_rows_reports_each_by_line_and_imports_nothing(env: CliEnv) -> None:
    env.ok("members", "add", "zoe@example.org")
    before = snapshot(env.data_dir)
    rows = [
        FORM_ROWS[0],  # line 2: fine
        ["", "not-an-address", "X", "", ""],  # line 3: not an address
        FORM_ROWS[1],  # line 4: fine
        ["", "frank@example.org", "F" * 501, "", ""],  # line 5: name too long
        ["", "ALICE@example.org", "Alice again", "", ""],  # line 6: repeats line 2
        ["", "", "nobody", "", ""],  # line 7: empty address
    ]
    path = write_csv(env.root / "form.csv", FORM_HEADER, rows)

    for extra in ([], ["--dry-run"]):
        result = env.invoke("members", "import", str(path), *FORM_COLUMNS, *extra)
        assert result.exit_code == 1, describe(result)
        assert not has_traceback(result), describe(result)
        problems = [line for line in result.stderr.splitlines() if line.startswith("line ")]
        numbers = [p.split(":")[0] for p in problems]
        assert numbers == ["line 3", "line 5", "line 6", "line 7"], describe(result)
        assert "not-an-address" in problems[0]
        assert "line 2" in problems[2], "a repeat should name the line it repeats"
        assert "nothing imported" in result.stderr
        assert snapshot(env.data_dir) == before

    assert [m["address"] for m in env.members()] == ["zoe@example.org"]


def test_import_without_the_email_column_names_the_columns_it_found(env: CliEnv) -> None:
    path = write_csv(env.root / "form.csv", FORM_HEADER, FORM_ROWS)
    result = env.invoke("members", "import", str(path))  # default column "email" is not in this file
    assert result.exit_code == 1, describe(result)
    assert "line 1" in result.stderr and "Email Address" in result.stderr
    assert not env.database.exists() or env.members() == []


def test_import_of_a_file_that_is_not_utf8_is_refused_cleanly(env: CliEnv) -> None:
    path = env.root / "latin1.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("email,name\nrenee@example.org,Ren\u00e9e\n".encode("latin-1"))
    result = env.invoke("members", "import", str(path))
    assert result.exit_code == 1, describe(result)
    assert not has_traceback(result), describe(result)
    assert "UTF-8" in result.stderr.upper().replace("UTF8", "UTF-8"), describe(result)
    assert not env.database.exists() or env.members() == []


# -- members export ----------------------------------------------------------------------------


TRICKY_ROWS = [
    [
        "",
        "pat@example.org",
        'Pat "PJ" O\'Brien, Jr',
        "Caf\u00e9 \u00dcn\u00efcode, Ltd",
        'Says "hi", often',
    ],
    ["", "quinn@example.org", "Quinn", "Team; Data & Digital", "line one\nline two"],
    ["", "ren@example.org", "\u738b\u5c0f\u660e", "\u5317\u4eac", ""],
]


def test_export_csv_and_json_agree_and_round_trip_through_import(env: CliEnv, tmp_path: Path) -> None:
    import_form(env, FORM_ROWS + TRICKY_ROWS)
    env.ok("members", "remove", "bob@example.org")
    csv_path, json_path = tmp_path / "members.csv", tmp_path / "members.json"
    env.ok("members", "export", "--output", str(csv_path))
    env.ok("members", "export", "--format", "json", "--output", str(json_path))

    with csv_path.open(newline="", encoding="utf-8") as handle:
        from_csv = list(csv.DictReader(handle))
    from_json = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(from_json) == len(FORM_ROWS) + len(TRICKY_ROWS)
    as_text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in from_json]
    assert from_csv == as_text
    assert {r["address"]: r["status"] for r in from_json}["bob@example.org"] == "left"
    stdout_export = env.ok("members", "export").stdout
    assert list(csv.DictReader(io.StringIO(stdout_export))) == from_csv

    # The CSV export is a valid import for another programme, and nothing is lost on the way.
    other = CliEnv(tmp_path / "other", sandbox_port=env.sandbox_port)
    other.ok("members", "import", str(csv_path), "--email-column", "address", "--org-column", "org")
    fields = ("address", "name", "org", "about")
    assert [{k: m[k] for k in fields} for m in other.members()] == [
        {k: m[k] for k in fields} for m in from_json
    ]


# -- members add / show / remove / list --------------------------------------------------------


def test_members_add_show_remove_list(env: CliEnv) -> None:
    env.ok(
        "members",
        "add",
        "Alice@Example.org",
        "--name",
        "Alice Smith",
        "--org",
        "LCC",
        "--about",
        "Digital",
    )
    env.ok("members", "add", "bob@example.org", "--name", "Bob")

    shown = json.loads(env.ok("members", "show", "alice@example.org").stdout)
    member = shown["member"]
    assert (
        member["address"],
        member["name"],
        member["org"],
        member["about"],
        member["status"],
    ) == (
        "alice@example.org",
        "Alice Smith",
        "LCC",
        "Digital",
        "active",
    )
    listed = env.ok("members", "list").stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["alice@example.org", "active"],
        ["bob@example.org", "active"],
    ]

    result = env.ok("members", "remove", "bob@example.org")
    assert "bob@example.org" in result.stdout
    assert json.loads(env.ok("members", "show", "bob@example.org").stdout)["member"]["status"] == "left"
    assert env.ok("members", "list", "--status", "left").stdout.split("\t")[0] == "bob@example.org"
    active = env.ok("members", "list", "--status", "active").stdout.splitlines()
    assert [line.split("\t")[0] for line in active] == ["alice@example.org"]
    # Removing sends nothing: only the two welcomes are in the outbox.
    assert sorted(row[1] for row in env.outbox()) == ["welcome", "welcome"]


def test_members_commands_refuse_unknown_and_invalid_addresses_cleanly(env: CliEnv) -> None:
    env.ok("members", "add", "alice@example.org")
    before = snapshot(env.data_dir)
    for args in (("show", "nobody@example.org"), ("remove", "nobody@example.org")):
        result = env.invoke("members", *args)
        assert result.exit_code == 1, describe(result, args)
        assert "nobody@example.org" in result.stderr and not has_traceback(result)
    result = env.invoke("members", "add", "not-an-address")
    assert result.exit_code != 0 and not has_traceback(result), describe(result)
    assert "not-an-address" in result.stderr
    assert snapshot(env.data_dir) == before


# -- rounds ------------------------------------------------------------------------------------


def test_round_preview_lists_the_groups_and_changes_nothing(env: CliEnv) -> None:
    import_form(env)
    before = snapshot(env.data_dir)

    first = env.ok("round", "preview", "--seed", "7").stdout
    second = env.ok("round", "preview", "--seed", "7").stdout

    assert snapshot(env.data_dir) == before
    assert first == second, "a preview with the same seed must be the same"
    group_lines = [line for line in first.splitlines() if line.startswith("Group ")]
    assert len(group_lines) == 2, f"5 people make a pair and a triple:\n{first}"
    assert sorted(line.count(";") + 1 for line in group_lines) == [2, 3]
    people = [line.split("[host")[0] for line in group_lines]
    for _, _, name, _, _ in FORM_ROWS:
        in_groups = sum(name in part for part in people)
        assert in_groups == 1, f"{name} should be in exactly one group:\n{first}"
    assert env.status()["latest_round"] is None


def test_round_start_no_send_queues_introductions_and_show_lists_everyone(env: CliEnv) -> None:
    import_form(env)

    env.ok("round", "start", "--no-send", "--seed", "3")

    status = env.status()
    assert status["latest_round_state"] == "started"
    intros = [row for row in env.outbox() if row[1] == "intro"]
    # one copy of each group's introduction per member: 5 members in 2 groups
    assert len(intros) == 5 and all(row[2] == "queued" for row in intros)
    shown = env.ok("round", "show").stdout
    assert shown.startswith(f"round {status['latest_round']} (started)"), shown
    assert "seed 3" in shown.splitlines()[0]
    for _, address, _, _, _ in FORM_ROWS:
        assert shown.count(f"<{address}>") == 1, f"{address} should be in exactly one group:\n{shown}"
    assert shown.count("[host]") == 2
    same = env.ok("round", "show", status["latest_round"]).stdout
    assert same == shown
    unknown = env.invoke("round", "show", "1999-01")
    assert unknown.exit_code == 1 and "1999-01" in unknown.stderr and not has_traceback(unknown)


def test_round_start_twice_sends_each_introduction_once(env: CliEnv, sandbox: SandboxServer) -> None:
    import_form(env)

    first = env.ok("round", "start")
    round_id = env.status()["latest_round"]
    show_after_first = env.ok("round", "show").stdout
    second = env.ok("round", "start")

    assert "already started" in second.stdout, describe(second)
    assert env.ok("round", "show").stdout == show_after_first
    intros = [row for row in env.outbox() if row[1] == "intro"]
    assert len(intros) == 5 and all(row[2] == "sent" for row in intros), describe(first)
    for _, address, _, _, _ in FORM_ROWS:
        received = messages_of_kind(env.mailbox(address), "intro")
        assert len(received) == 1, f"{address} got {len(received)} introductions"
        assert len(messages_of_kind(env.mailbox(address), "welcome")) == 1
    assert env.status()["latest_round"] == round_id


def test_outbox_list_shows_each_email_and_its_state(env: CliEnv, sandbox: SandboxServer) -> None:
    assert env.ok("outbox", "list").stdout == ""
    env.ok("members", "add", "alice@example.org")
    env.ok("members", "add", "bob@example.org")

    queued = env.outbox()
    assert [(row[1], row[2], row[3]) for row in queued] == [("welcome", "queued", "0")] * 2
    assert env.ok("outbox", "list", "--status", "sent").stdout == ""

    env.ok("round", "start")  # delivers everything due, the welcomes included
    rows = env.outbox()
    assert {(row[1], row[2]) for row in rows} == {("welcome", "sent"), ("intro", "sent")}
    assert all(int(row[3]) >= 1 for row in rows)
    sent = env.ok("outbox", "list", "--status", "sent").stdout.splitlines()
    assert len(sent) == len(rows) == 4  # two welcomes, each member's copy of the introduction
    assert env.ok("outbox", "list", "--status", "failed").stdout == ""
    for address in ("alice@example.org", "bob@example.org"):
        kinds = sorted(m[KIND_HEADER] for m in maildir_messages(env.mailbox(address)))
        assert kinds == ["intro", "welcome"]


def test_status_json_counts_members_rounds_and_outbox(env: CliEnv) -> None:
    fresh = env.status()
    assert fresh["mode"] == "sandbox" and fresh["address"] == PROGRAMME_ADDRESS
    assert set(fresh["members"].values()) == {0}
    assert fresh["latest_round"] is None
    assert date.fromisoformat(fresh["next_round_on"]) >= datetime.now(UTC).date() - timedelta(days=1)

    import_form(env)
    env.ok("members", "remove", "erin@example.org")
    env.ok("round", "start", "--no-send")
    info = env.status()
    assert info["members"]["active"] == 4 and info["members"]["left"] == 1
    assert sum(info["members"].values()) == 5
    assert info["latest_round_state"] == "started"
    assert info["outbox"] == {"queued": 5 + 4, "sent": 0, "failed": 0}  # welcomes, an intro per member
    assert date.fromisoformat(info["next_round_on"]) >= datetime.now(UTC).date() - timedelta(days=1)

    plain = env.ok("status").stdout
    assert f"latest_round: {info['latest_round']}" in plain and "members:" in plain


def test_summary_preview_writes_the_eml_and_pictures_and_sends_nothing(env: CliEnv, tmp_path: Path) -> None:
    import_form(env)
    env.ok("round", "start", "--no-send")
    closed = env.ok("round", "close", "--no-send", "--force")
    round_id = env.status()["latest_round"]
    assert env.status()["latest_round_state"] == "closed", describe(closed)
    outbox_before = env.outbox()
    out = tmp_path / "preview"

    result = env.ok("summary", "--preview", str(out))

    eml = out / f"summary-{round_id}.eml"
    assert eml.is_file(), describe(result)
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message[KIND_HEADER] == "summary"
    assert "organiser@localhost" in str(message["To"])
    assert message.get_body(preferencelist=("plain",)) is not None
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 2, f"the growth chart and the network diagram: {pngs}"
    inline = {part.get_content() for part in message.walk() if part.get_content_type() == "image/png"}
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert data in inline, f"{png.name} is not the picture in the email"
    assert env.outbox() == outbox_before, "a preview must queue nothing"

    neither = env.invoke("summary")
    assert neither.exit_code != 0 and not has_traceback(neither)


# -- errors with documented exit codes ---------------------------------------------------------


BAD_CONFIGS = [
    ('[programme]\ntimezone = "Mars/Olympus"\n', "programme.timezone"),
    ('[programme]\nmeeting_week = "two"\n', "programme.meeting_week"),
    ('[programme]\ncolour = "blue"\n', "programme.colour"),
    ('[programme]\naddress = "not an address"\n', "programme.address"),
    ("[mystery]\nx = 1\n", "mystery"),
    ('[imap]\nhost = "imap.example.org"\n', "smtp"),
    ("[programme\n", "(file)"),
]


@pytest.mark.parametrize(("text", "key"), BAD_CONFIGS, ids=[key for _, key in BAD_CONFIGS])
def test_configuration_errors_exit_2_naming_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "unmentoring.toml"
    path.write_text(text, encoding="utf-8")
    env = CliEnv(tmp_path / "unused", sandbox_port=free_port())
    for args in (("status",), ("members", "list"), ("round", "preview"), ("check-config",)):
        result = env.invoke(*args, config=path)
        assert result.exit_code == 2, describe(result, args)
        assert str(path) in result.stderr and key in result.stderr, describe(result, args)
        assert not has_traceback(result), describe(result, args)
    assert not (tmp_path / "data").exists(), "a bad configuration must not create a data folder"


def test_a_missing_configuration_file_exits_2(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "p", sandbox_port=free_port())
    missing = tmp_path / "nowhere.toml"
    result = env.invoke("status", config=missing)
    assert result.exit_code == 2 and str(missing) in result.stderr, describe(result)


def test_check_config_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-Pa55word-xyz"
    monkeypatch.setenv("UM_TEST_IMAP_PASSWORD", secret)
    path = tmp_path / "unmentoring.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [imap]
            host = "imap.example.org"
            username = "programme@example.org"
            password_env = "UM_TEST_IMAP_PASSWORD"
            [smtp]
            host = "smtp.example.org"
            """
        ),
        encoding="utf-8",
    )
    env = CliEnv(tmp_path / "p", sandbox_port=free_port())
    result = env.invoke("check-config", config=path)
    assert result.exit_code == 0, describe(result)
    assert secret not in result.output
    shown = json.loads(result.stdout)
    assert shown["mode"] == "production" and shown["imap"]["password"] == "********"


def test_a_second_process_on_the_same_data_exits_3(env: CliEnv) -> None:
    env.ok("members", "add", "alice@example.org")
    with Store.open(env.database):
        result = env.invoke("members", "list")
    assert result.exit_code == 3, describe(result)
    assert f"already running (pid {os.getpid()})" in result.stderr


def test_a_damaged_database_exits_4_and_is_not_overwritten(env: CliEnv) -> None:
    env.ok("members", "add", "alice@example.org")
    damaged = env.database.read_bytes()[: len(env.database.read_bytes()) // 2]
    env.database.write_bytes(damaged)
    for args in (("status",), ("members", "add", "bob@example.org")):
        result = env.invoke(*args)
        assert result.exit_code == 4, describe(result, args)
        assert not has_traceback(result)
        assert env.database.read_bytes() == damaged


# -- explain -----------------------------------------------------------------------------------


MISSED = (
    "From: Alice <alice@example.org>\r\nTo: unmentoring@localhost\r\n"
    "Subject: Re: Did you meet Bob?\r\n"
    "Message-ID: <r1@example.org>\r\nDate: Mon, 02 Feb 2026 09:00:00 +0000\r\n\r\n"
    "Missed - she was ill\r\n\r\n"
    "On Fri, UnMentoring wrote:\r\n> Did you meet? Reply met or missed\r\n"
)
OUT_OF_OFFICE = (
    "From: alice@example.org\r\nTo: unmentoring@localhost\r\nSubject: Out of office\r\n"
    "Auto-Submitted: auto-replied\r\nMessage-ID: <r2@example.org>\r\n\r\nI am away.\r\n"
)


def test_explain_reads_a_file_and_stdin_alike_and_changes_nothing(env: CliEnv, tmp_path: Path) -> None:
    path = tmp_path / "reply.eml"
    path.write_bytes(MISSED.encode())

    from_file = env.ok("explain", str(path))
    from_stdin = env.ok("explain", "-", input=MISSED.encode())

    answer = json.loads(from_file.stdout)
    assert (answer.pop("file"), json.loads(from_stdin.stdout).pop("file")) == (str(path), "-")
    assert answer == {k: v for k, v in json.loads(from_stdin.stdout).items() if k != "file"}
    assert {k: answer[k] for k in ("kind", "command", "sender")} == {
        "kind": "command",
        "command": "missed",
        "sender": "alice@example.org",
    }
    assert "ill" in answer["argument"]
    assert set(answer) >= {"kind", "command", "argument", "sender", "bounced_addresses", "reason"}
    auto = json.loads(env.ok("explain", "-", input=OUT_OF_OFFICE.encode()).stdout)
    assert auto["kind"] == "auto_reply" and auto["command"] is None
    assert not env.data_dir.exists(), "explain must change nothing"
