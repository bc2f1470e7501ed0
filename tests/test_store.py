"""The store: transactions, indexes, schema, lock, corruption and backups."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tinydb import Query, TinyDB
from tinydb.storages import MemoryStorage
from tinydb.table import Document

from matcher.model import Group, Member, MemberStatus, OutboxEntry
from matcher.storage import AtomicJSONStorage, Segment
from matcher.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreCorrupt, StoreError, StoreLocked

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "db.json") as s:
        yield s


def test_a_new_store_is_created_with_the_schema_version(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.json") as s:
        assert s.schema_version == SCHEMA_VERSION
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
        store.put(Group("2026-12", 1, ["m1", "m2"], "m1"))
        store.put(Group("2026-12", 2, ["m3", "m1"], "m3"))
    assert [g.number for g in store.find(Group, "member", "m1")] == [1, 2]
    assert store.find_one(Group, "round_id", "2026-12").number in (1, 2)
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
    entries = [OutboxEntry(f"k{i}", "help", "a@d", ["b@d"], f"id{i}@d") for i in range(100)]
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

    with Store.open(path, migrations={**MIGRATIONS, 0: rename_email}) as s:
        assert s.schema_version == SCHEMA_VERSION
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
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys
            from matcher.store import Store
            s = Store.open({str(path)!r})
            print("ready", flush=True)
            sys.stdin.readline()
            s.close()
        """),
        ],
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


# -- the table class, the file layout, lazy decoding, before_commit


def _tinydb_script(db: TinyDB) -> list:
    """A run of every TinyDB table operation the store uses (and a few more); what each returned."""
    t = db.table("things")
    q = Query()
    seen: list = [t.insert({"n": 1}), t.insert_multiple([{"n": 2}, {"n": 3}, {"n": 4}])]
    seen.append(t.insert(Document({"n": 10}, doc_id=10)))
    seen.append(t.insert({"n": 11}))  # after an explicit id, the next id is computed again
    seen.append(t.search(q.n > 2))
    seen.append(t.update({"tag": "x"}, doc_ids=[2, 99]))  # a missing id is skipped
    seen.append(t.update(lambda d: d.update(n=d["n"] * 10), doc_ids=[3]))
    seen.append(t.search(q.n > 2))  # the query cache was cleared by the writes
    seen.append(t.update({"big": True}, q.n >= 30))
    seen.append(t.remove(doc_ids=[1, 98]))
    seen.append(t.remove(q.n == 4))
    seen.append([t.get(doc_id=i) for i in (1, 2, 3, 10)])
    seen.append(t.upsert({"n": 5}, q.n == 5))
    seen.append((t.contains(doc_id=2), t.contains(q.big == True), len(t)))  # noqa: E712
    seen.append([(d.doc_id, dict(d)) for d in t.all()])
    with pytest.raises(ValueError, match="already exists"):
        t.insert(Document({"n": 0}, doc_id=2))
    t.truncate()
    seen.append((t.all(), t.insert({"n": 7})))
    return seen


def test_the_table_class_behaves_like_tinydbs_own(store: Store) -> None:
    expected = _tinydb_script(TinyDB(storage=MemoryStorage))
    with store.transaction():
        got = _tinydb_script(store._db)
    assert got == expected
    store.close()
    with Store.open(store.path) as again:  # and the result was committed
        assert [dict(d) for d in again._db.table("things").all()] == [{"n": 7}]


def _big_store(path: Path) -> None:
    with Store.open(path) as s, s.transaction():
        s.put_many([Member(f"m{i}", f"p{i}@example.org") for i in range(50)])
        s.put_many([Group("2026-12", n, [f"m{n}", f"m{n + 1}"], f"m{n}") for n in range(1, 40)])


def test_the_file_is_one_json_document_with_a_table_per_line(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    text = path.read_text()
    document = json.loads(text)
    assert document["members"]["1"]["address"] == "p0@example.org"
    assert len(document["groups"]) == 39
    lines = text.splitlines()
    assert [line.lstrip("{").split(":", 1)[0] for line in lines] == [
        '"meta"',
        '"members"',
        '"groups"',
        '"~checksums"',
    ]
    for line in lines:  # each line is one table, then "," (or the document's closing "}")
        assert isinstance(json.loads(line.lstrip("{").split(":", 1)[1][:-1]), dict)


def test_a_plain_json_file_opens_and_is_rewritten_in_the_layout(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    path.write_text(
        json.dumps(
            {
                "meta": {"1": {"schema_version": SCHEMA_VERSION}},
                "members": {"1": {"id": "m1", "address": "ann@example.org"}},
            },
            indent=2,
        )
    )
    with Store.open(path) as s:
        assert s.get(Member, "m1").address == "ann@example.org"
        with pytest.raises(RuntimeError), s.transaction():  # a rollback reads the file again
            s.put(Member("m2", "bob@example.org"))
            raise RuntimeError
        assert s.get(Member, "m2") is None
        with s.transaction():
            s.put(Member("m3", "cat@example.org"))
    assert path.read_text().splitlines()[-1].startswith('"~checksums":')
    with Store.open(path) as s:
        assert [m.id for m in s.all(Member)] == ["m1", "m3"]


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    original = Segment.decode

    def counting(self: Segment, name: str) -> dict:
        decoded.append(name)
        return original(self, name)

    monkeypatch.setattr(Segment, "decode", counting)
    return decoded


def test_tables_are_decoded_when_first_used_and_encoded_only_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    groups_line = [line for line in path.read_bytes().split(b"\n") if line.startswith(b'"groups"')]
    decoded = _count_decodes(monkeypatch)
    with Store.open(path) as s:
        assert decoded == ["meta"]
        with s.transaction():
            s.put(Member("m1", "changed@example.org"))
        assert decoded == ["meta", "members"], "a member change neither decodes nor encodes groups"
        assert [line for line in path.read_bytes().split(b"\n") if line.startswith(b'"groups"')] == (
            groups_line
        )
        assert s.find_one(Member, "address", "changed@example.org").id == "m1"
        assert [g.number for g in s.find(Group, "member", "m5")] == [4, 5]
        assert decoded == ["meta", "members", "groups"]


def test_a_rollback_reverts_only_the_changed_tables_without_reading_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    with Store.open(path) as s:
        assert s.get(Group, "2026-12:1") is not None and s.get(Member, "m1") is not None
        decoded = _count_decodes(monkeypatch)
        monkeypatch.setattr(AtomicJSONStorage, "read", lambda self: pytest.fail("read the file again"))
        with pytest.raises(RuntimeError), s.transaction():
            s.put(Member("m1", "new@example.org"))
            s.put(Member("new", "p1@example.org"))
            raise RuntimeError
        assert decoded == []
        assert s.find_one(Member, "address", "new@example.org") is None
        assert s.find_one(Member, "address", "p1@example.org").id == "m1"
        assert s.get(Member, "new") is None
        assert decoded == ["members"], "the reverted table is decoded again from the file, on use"
        assert len(s.find(Group, "round_id", "2026-12")) == 39
        with s.transaction():
            s.put(Member("new", "new@example.org"))
    monkeypatch.undo()
    with Store.open(path) as s:
        assert len(s.all(Member)) == 51 and len(s.all(Group)) == 39


def test_a_damaged_table_is_refused_at_open_even_before_it_is_used(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    data = path.read_bytes()
    at = data.index(b'"round_id"', data.index(b'"groups"'))
    damaged = data[:at] + b"#" + data[at + 1 :]
    path.write_bytes(damaged)
    with pytest.raises(StoreCorrupt, match="not a readable database"):
        Store.open(path)
    assert path.read_bytes() == damaged


def test_a_hand_edited_file_that_is_still_json_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    path.write_bytes(path.read_bytes().replace(b"p7@example.org", b"pq@example.org"))
    with Store.open(path) as s:
        assert s.get(Member, "m7").address == "pq@example.org"


def test_text_without_a_utf8_form_survives(store: Store) -> None:
    with store.transaction():
        store.put(Member("m1", "ann@example.org", name="Ann \udcff"))
    store.close()
    with Store.open(store.path) as s:
        assert s.get(Member, "m1").name == "Ann \udcff"


def test_an_update_outside_a_transaction_is_refused_and_changes_nothing(store: Store) -> None:
    with store.transaction():
        store.put(Member("m1", "ann@example.org"))
    with pytest.raises(StoreError, match="outside a transaction"):
        store.put(Member("m1", "changed@example.org"))
    assert store.find_one(Member, "address", "ann@example.org").id == "m1"
    with pytest.raises(StoreError, match="outside a transaction"):
        store.set_meta("x", 1)
    assert store.get_meta("x") is None


def test_meta_values_are_copies(store: Store) -> None:
    with store.transaction():
        store.set_meta("imap", {"uids": [1]})
    store.get_meta("imap")["uids"].append(2)
    assert store.get_meta("imap") == {"uids": [1]}


def test_before_commit_callbacks_run_in_order_before_the_write(store: Store) -> None:
    calls: list[str] = []
    on_disk = store.path.read_bytes()

    def first() -> None:
        calls.append("first")
        assert store.path.read_bytes() == on_disk, "runs before the durable write"

    with store.transaction():
        store.put(Member("m1", "ann@example.org"))
        store.before_commit(first)
        with store.transaction():
            store.before_commit(lambda: calls.append("second"))
            store.before_commit(first)  # already registered: runs once
        assert calls == []
    assert calls == ["first", "second"]
    with store.transaction():
        pass
    assert calls == ["first", "second"], "callbacks belong to one transaction"


def test_before_commit_callbacks_are_dropped_by_a_rollback_and_can_cause_one(store: Store) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError), store.transaction():
        store.before_commit(lambda: calls.append("dropped"))
        raise RuntimeError
    with store.transaction():
        pass
    assert calls == []

    def refuse() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), store.transaction():
        store.put(Member("m1", "ann@example.org"))
        store.before_commit(refuse)
    assert store.get(Member, "m1") is None
    assert store.find_one(Member, "address", "ann@example.org") is None
    with pytest.raises(StoreError, match="outside a transaction"):
        store.before_commit(lambda: None)


def test_an_unchanged_file_is_backed_up_once(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    for _ in range(3):
        Store.open(path).close()
    assert sorted(p.name for p in tmp_path.glob("db.json.bak*")) == ["db.json.bak1"]
    assert (tmp_path / "db.json.bak1").read_bytes() == path.read_bytes()


def test_a_table_changed_on_disk_while_open_is_refused_when_used(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    with Store.open(path) as s:
        data = path.read_bytes()
        at = data.index(b"2026-12", data.index(b'"groups"'))
        with open(path, "r+b") as f:  # in place, as no writer of ours ever does
            f.seek(at)
            f.write(b"2027")
        with pytest.raises(StoreCorrupt, match="'groups' changed on disk since it was opened"):
            s.find(Group, "round_id", "2026-12")


def test_a_refused_open_leaves_no_file_open(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    _big_store(path)
    with Store.open(path) as s, s.transaction():
        s.set_meta("schema_version", 99)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(StoreError, match="schema version 99 is newer"):
            Store.open(path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_unchanged_tables_are_copied_through_memory_where_the_kernel_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.json"
    _big_store(path)

    def unsupported(*args: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    with Store.open(path) as s, s.transaction():
        s.put(Member("m1", "changed@example.org"))
    monkeypatch.undo()
    with Store.open(path) as s:
        assert s.get(Member, "m1").address == "changed@example.org"
        assert len(s.all(Group)) == 39 and s.get_meta("schema_version") == SCHEMA_VERSION


def test_a_service_opening_for_every_pass_keeps_older_backups(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    for i in range(4):
        with Store.open(path, backup_every=3600) as s, s.transaction():
            s.put(Member(f"m{i}", f"p{i}@example.org"))
    # the first open with content made the only backup; later opens within the hour kept it
    assert sorted(p.name for p in tmp_path.glob("db.json.bak*")) == ["db.json.bak1"]
    with Store.open(tmp_path / "db.json.bak1") as backup:
        assert [m.id for m in backup.all(Member)] == ["m0"]
