"""The store: transactions, indexes, schema, lock, corruption and backups."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from matcher.model import Group, Member, MemberStatus, OutboxEntry
from matcher.store import Store, StoreCorrupt, StoreError, StoreLocked

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "db.json") as s:
        yield s


def test_a_new_store_is_created_with_the_schema_version(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.json") as s:
        assert s.schema_version == 1
    assert (tmp_path / "db.json").exists()


def test_committed_changes_survive_reopening(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.json") as s, s.transaction():
        s.put(Member("m1", "ann@example.org", name="Ann"))
    with Store.open(tmp_path / "db.json") as s:
        assert s.get(Member, "m1").name == "Ann"


def test_a_transaction_that_raises_writes_nothing(store: Store) -> None:
    with store.transaction():
        store.put(Member("m1", "ann@example.org"))
    before = store.path.read_bytes()
    with pytest.raises(RuntimeError), store.transaction():
        store.put(Member("m2", "bob@example.org"))
        changed = store.get(Member, "m1")
        changed.name = "Changed"
        store.put(changed)
        raise RuntimeError("boom")
    assert store.path.read_bytes() == before
    assert store.get(Member, "m2") is None
    assert store.find_one(Member, "address", "bob@example.org") is None
    assert store.get(Member, "m1").name == ""


def test_one_durable_write_per_transaction(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = []
    storage = store._middleware.storage
    original = storage.write
    monkeypatch.setattr(storage, "write", lambda data: (writes.append(1), original(data)))
    with store.transaction():
        for i in range(50):
            store.put(Member(f"m{i}", f"p{i}@example.org"))
    assert len(writes) == 1
    with store.transaction():
        pass
    assert len(writes) == 1, "a transaction that changes nothing writes nothing"


def test_nested_transactions_join_the_outer_one(store: Store) -> None:
    with pytest.raises(ValueError), store.transaction():
        with store.transaction():
            store.put(Member("m1", "ann@example.org"))
        raise ValueError
    assert store.get(Member, "m1") is None


def test_writing_outside_a_transaction_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="outside a transaction"):
        store.put(Member("m1", "ann@example.org"))
    assert store.get(Member, "m1") is None


def test_indexes_follow_updates_and_deletes(store: Store) -> None:
    with store.transaction():
        store.put(Member("m1", "ann@example.org"))
        store.put(Group("2026-12", 1, ["m1", "m2"], "m1", intro_message_id="x@d"))
        store.put(Group("2026-12", 2, ["m3", "m1"], "m3"))
    assert [g.number for g in store.find(Group, "member", "m1")] == [1, 2]
    assert store.find_one(Group, "intro_message_id", "x@d").number == 1
    with store.transaction():
        m = store.get(Member, "m1")
        m.address = "ann@new.example.org"
        store.put(m)
        store.delete(store.get(Group, "2026-12:2"))
    assert store.find_one(Member, "address", "ann@example.org") is None
    assert store.find_one(Member, "address", "ann@new.example.org").id == "m1"
    assert [g.number for g in store.find(Group, "member", "m1")] == [1]
    assert store.count(Group, "round_id", "2026-12") == 1


def test_many_records_in_one_operation(store: Store) -> None:
    entries = [OutboxEntry(f"k{i}", "help", "a@d", ["b@d"], f"id{i}@d", "raw") for i in range(100)]
    with store.transaction():
        store.put_many(entries)
    with store.transaction():
        for e in entries[:40]:
            e.status = "sent"
        store.update_many(entries[:40])
    assert store.count(OutboxEntry, "status", "sent") == 40
    assert store.count(OutboxEntry, "status", "queued") == 60
    assert store.find_one(OutboxEntry, "message_id", "id7@d").status == "sent"
    with pytest.raises(StoreError, match="already holds"), store.transaction():
        store.put_many(entries[:1])


def test_lookups_do_not_scan_tables(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.transaction():
        store.put_many([Member(f"m{i}", f"p{i}@example.org") for i in range(2000)])
    from tinydb.table import Table

    def no_scan(*args, **kwargs):
        raise AssertionError("a lookup scanned a table")

    monkeypatch.setattr(Table, "all", no_scan)
    monkeypatch.setattr(Table, "search", no_scan)
    monkeypatch.setattr(Table, "__iter__", no_scan)
    assert store.find_one(Member, "address", "p1999@example.org").id == "m1999"
    assert store.get(Member, "m5").address == "p5@example.org"


def test_meta_values(store: Store) -> None:
    with store.transaction():
        store.set_meta("imap", {"uidvalidity": 7})
    assert store.get_meta("imap") == {"uidvalidity": 7}
    assert store.get_meta("missing", "default") == "default"


def test_migration_hook_upgrades_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    path.write_text('{"members": {"1": {"id": "m1", "email": "ann@example.org"}}}')

    def rename_email(data: dict) -> None:
        for doc in data["members"].values():
            doc["address"] = doc.pop("email")

    with Store.open(path, migrations={0: rename_email}) as s:
        assert s.schema_version == 1
        assert s.find_one(Member, "address", "ann@example.org").id == "m1"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    path.write_text('{"meta": {"1": {"schema_version": 99}}}')
    with pytest.raises(StoreError, match=r"db\.json: schema version 99 is newer"):
        Store.open(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: good[: len(good) // 2],  # truncated
        lambda good: b"",  # emptied
        lambda good: b"\x00" * 64,  # zeroed
        lambda good: b'["not", "an", "object"]',
    ],
)
def test_a_damaged_file_is_refused_and_left_untouched(tmp_path: Path, damage) -> None:
    path = tmp_path / "db.json"
    with Store.open(path) as s, s.transaction():
        s.put(Member("m1", "ann@example.org", status=MemberStatus.ACTIVE))
    Store.open(path).close()  # a restart keeps a backup of the good file
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(StoreCorrupt) as info:
        Store.open(path)
    message = str(info.value)
    assert str(path) in message
    assert "db.json.bak1" in message
    assert path.read_bytes() == damaged
    # the lock was released: a repaired file opens
    (tmp_path / "db.json.bak1").replace(path)
    with Store.open(path) as s:
        assert s.get(Member, "m1").status is MemberStatus.ACTIVE


def test_the_last_three_good_versions_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    for i in range(5):
        with Store.open(path) as s, s.transaction():
            s.put(Member(f"m{i}", f"p{i}@example.org"))
    backups = sorted(p.name for p in tmp_path.glob("db.json.bak*"))
    assert backups == ["db.json.bak1", "db.json.bak2", "db.json.bak3"]
    with Store.open(tmp_path / "db.json.bak1") as newest:
        assert len(newest.all(Member)) == 4
    with Store.open(tmp_path / "db.json.bak3") as oldest:
        assert len(oldest.all(Member)) == 2


def test_a_missing_file_with_backups_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    for _ in range(2):
        Store.open(path).close()
    path.unlink()
    with pytest.raises(StoreCorrupt, match="missing, but backups exist"):
        Store.open(path)


def test_a_second_process_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from matcher.store import Store
            s = Store.open({str(path)!r})
            print("ready", flush=True)
            sys.stdin.readline()
            s.close()
        """)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked) as info:
            Store.open(path)
        assert info.value.pid == str(holder.pid)
        assert f"already running (pid {holder.pid})" in str(info.value)
    finally:
        holder.communicate("\n", timeout=10)
    assert holder.returncode == 0
    with Store.open(path):
        pass
