"""MaildirSource on real Maildirs (written with the standard library's mailbox module)."""

from __future__ import annotations

import mailbox
import os
import secrets
import time
from pathlib import Path

import pytest

from inbox.sources.maildir import MaildirError, MaildirSource


def message(n: int) -> bytes:
    # Bytes as an MTA would store them; CRLF and 8-bit on purpose: they must come back as is.
    return (
        f"From: sender{n}@example.org\r\nTo: programme@example.org\r\n"
        f"Subject: join {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
        f"join\r\nname: Zo\u00eb {n}\r\n"
    ).encode()


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return tmp_path / "Maildir"


def deliver(path: Path, raw: bytes, *, subdir: str = "new") -> str:
    """Deliver as an MTA does: write under tmp/, then rename into new/ (or cur/, flagged seen).

    (mailbox.Maildir.add would rewrite CRLF line ends as LF.)"""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    now = time.time_ns()
    key = f"{now // 10**9}.M{now // 1000 % 10**6}P{os.getpid()}R{secrets.token_hex(4)}.test"
    (path / "tmp" / key).write_bytes(raw)
    os.rename(path / "tmp" / key, path / subdir / (key + (":2,S" if subdir == "cur" else "")))
    return key


def test_creates_a_missing_maildir(tmp_path: Path) -> None:
    path = tmp_path / "mail" / "inbox"
    source = MaildirSource(path)
    assert list(source.fetch_new()) == []
    assert all((path / sub).is_dir() for sub in ("tmp", "new", "cur"))


def test_fetch_yields_new_and_cur_in_delivery_order_exactly(maildir: Path) -> None:
    keys = [deliver(maildir, message(1)), deliver(maildir, message(2), subdir="cur")]
    keys.append(deliver(maildir, message(3)))
    # An old delivery already seen by a mail client (in cur/, with flags), and a message with
    # a name that carries no time: ordered by the file's modification time.
    (maildir / "cur" / "1000000000.M5P9.old:2,S").write_bytes(message(0))
    odd = maildir / "new" / "no-time-in-this-name"
    odd.write_bytes(message(4))
    os.utime(odd, (2_000_000_000, 2_000_000_000))

    fetched = list(MaildirSource(maildir).fetch_new())

    assert [item.raw for item in fetched] == [message(n) for n in range(5)]
    assert [item.ref for item in fetched] == ["1000000000.M5P9.old", *keys, "no-time-in-this-name"]


def test_mark_processed_and_quarantine_move_to_folders(maildir: Path) -> None:
    done_key = deliver(maildir, message(1))
    bad_key = deliver(maildir, message(2))
    kept_key = deliver(maildir, message(3), subdir="cur")
    source = MaildirSource(maildir, quarantine_folder="Held")

    source.mark_processed(done_key)
    source.quarantine(bad_key)

    assert [item.ref for item in source.fetch_new()] == [kept_key]
    box = mailbox.Maildir(maildir, factory=None, create=False)
    processed = box.get_folder("Processed")
    held = box.get_folder("Held")
    assert [processed.get_bytes(k) for k in processed.keys()] == [message(1)]
    assert [held.get_bytes(k) for k in held.keys()] == [message(2)]
    assert set(box.keys()) == {kept_key}

    source.mark_processed(kept_key)
    source.mark_processed(kept_key)  # a repeat after a crash before the commit is harmless
    assert list(source.fetch_new()) == []
    assert sorted(processed.keys()) == sorted([done_key, kept_key])


def test_reads_mail_written_by_the_mailbox_module(maildir: Path) -> None:
    box = mailbox.Maildir(maildir, factory=None, create=True)
    key = box.add(message(1))
    [item] = MaildirSource(maildir).fetch_new()
    assert item.ref == key
    assert item.raw == (maildir / "new" / key).read_bytes() == box.get_bytes(key)


def test_unknown_or_malformed_reference_is_a_clear_error(maildir: Path) -> None:
    source = MaildirSource(maildir)
    with pytest.raises(MaildirError, match="no message 'missing'"):
        source.mark_processed("missing")
    with pytest.raises(MaildirError, match="not a Maildir message key"):
        source.quarantine("../../etc/passwd")
    with pytest.raises(ValueError, match="folder name"):
        MaildirSource(maildir, processed_folder="../elsewhere")


def test_messages_delivered_during_iteration_are_not_lost(maildir: Path) -> None:
    for n in range(3):
        deliver(maildir, message(n))
    source = MaildirSource(maildir)
    seen: list[bytes] = []
    late = iter(range(10, 13))
    for item in source.fetch_new():
        deliver(maildir, message(next(late)))  # arrives while we work
        seen.append(item.raw)
        source.mark_processed(item.ref)
    for item in source.fetch_new():
        seen.append(item.raw)
        source.mark_processed(item.ref)

    assert sorted(seen) == sorted([message(n) for n in (0, 1, 2, 10, 11, 12)])
    assert list(source.fetch_new()) == []


def test_message_moved_to_cur_by_another_reader_is_still_returned(maildir: Path) -> None:
    first = deliver(maildir, message(1))
    second = deliver(maildir, message(2))
    source = MaildirSource(maildir)
    iterator = source.fetch_new()
    assert next(iterator).ref == first
    # A mail client marks the second message seen: new/KEY becomes cur/KEY:2,S.
    os.rename(maildir / "new" / second, maildir / "cur" / f"{second}:2,S")
    item = next(iterator)
    assert (item.ref, item.raw) == (second, message(2))
    source.mark_processed(item.ref)
    assert list((maildir / ".Processed" / "cur").iterdir()) == [
        maildir / ".Processed" / "cur" / f"{second}:2,S"
    ]
