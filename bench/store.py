"""Benchmark of the store at scale: open, many single-record updates in one transaction, commit.

    .venv/bin/python bench/store.py               100,000 members, 600,000 groups, 10,000 updates
    .venv/bin/python bench/store.py --members 20000 --groups 120000 --updates 2000

Builds a database of N members and 12 monthly rounds of pairs (6 x N groups, about half with an
outcome) through ``Store.put_many``, then in the same process:

  open_s            ``Store.open`` of that file (lock, read, checksums, backup, schema check)
  update_commit_s   ``--updates`` single-member updates in ONE ``store.transaction()``: read the member by
                    its primary index (``store.get``), change a field, ``store.put`` it; then the commit
                    (one atomic, fsynced write of the whole file)
  naive_s           the same updates with plain TinyDB on a copy of the file: a default ``TinyDB(path)``
                    (its JSONStorage reads and writes the whole file on every call) and one
                    ``table.update(fields, Query().id == member_id)`` per member. One such call takes
                    seconds at this size, so only ``--naive-sample`` of them are timed and the total is
                    extrapolated (``naive_extrapolated`` says so)
  speedup           naive_s / update_commit_s
  first_group_lookup_s   after reopening: the first group lookup, which decodes the groups table and
                    builds its indexes (the cost ``open_s`` leaves out)

Every update is checked after reopening the file. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinydb import Query, TinyDB  # noqa: E402

from matcher.model import Group, Member, MemberStatus, Outcome, Result  # noqa: E402
from matcher.store import Store  # noqa: E402

ROUNDS = 12
SEED = 20260601


def build_database(path: Path, members: int, groups: int, seed: int = SEED) -> list[str]:
    """Write the benchmark database; returns the member ids in insertion order."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    people = [
        Member(
            id=f"{rng.getrandbits(64):016x}",
            address=f"person{i}@example{i % 500}.org",
            name=f"Person Number{i}",
            org=f"Organisation {i % 5000}",
            about="Works on digital services; happy to talk about anything",
            status=MemberStatus.ACTIVE,
            joined_at=start,
            created_at=start,
        )
        for i in range(members)
    ]
    ids = [m.id for m in people]
    per_round = max(1, groups // ROUNDS)
    made: list[Group] = []
    for r in range(ROUNDS):
        round_id = f"2026-{r + 1:02d}"
        order = ids[:]
        rng.shuffle(order)
        for n in range(min(per_round, groups - len(made))):
            pair = [order[(2 * n) % len(order)], order[(2 * n + 1) % len(order)]]
            outcomes = {}
            if rng.random() < 0.5:
                outcomes = {pair[0]: Outcome(Result.MET, "", start + timedelta(days=30 * r + 10))}
            made.append(Group(round_id, n + 1, pair, host=pair[0], outcomes=outcomes))
    with Store.open(path) as store, store.transaction():
        store.put_many(people)
        store.put_many(made)
    return ids


def time_open(path: Path) -> tuple[float, Store]:
    start = time.perf_counter()
    store = Store.open(path)
    return time.perf_counter() - start, store


def time_updates(store: Store, ids: list[str]) -> float:
    start = time.perf_counter()
    with store.transaction():
        for member_id in ids:
            member = store.get(Member, member_id)
            assert member is not None, member_id
            member.silent_rounds += 1
            store.put(member)
    return time.perf_counter() - start


def time_naive(path: Path, ids: list[str], sample: int) -> tuple[float, int]:
    """Seconds for ``len(ids)`` plain TinyDB updates (extrapolated from ``sample`` of them) and the
    number actually timed."""
    timed = ids[: max(1, min(sample, len(ids)))]
    db = TinyDB(path)
    try:
        table = db.table("members")
        start = time.perf_counter()
        for member_id in timed:
            table.update({"silent_rounds": 1}, Query().id == member_id)
        seconds = time.perf_counter() - start
    finally:
        db.close()
    return seconds * len(ids) / len(timed), len(timed)


def verify(path: Path, ids: list[str], updated: set[str]) -> float:
    """Reopen: every updated member shows the change, the others do not. Returns the time of the
    first group lookup."""
    with Store.open(path) as store:
        for member_id in ids:
            member = store.get(Member, member_id)
            expected = 1 if member_id in updated else 0
            if member is None or member.silent_rounds != expected:
                raise SystemExit(f"member {member_id}: expected silent_rounds {expected}, got {member}")
        start = time.perf_counter()
        found = store.find(Group, "member", ids[0])
        seconds = time.perf_counter() - start
        if not found:
            raise SystemExit(f"no group found for member {ids[0]}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=600_000)
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--naive-sample", type=int, default=3, help="plain TinyDB updates actually timed")
    args = parser.parse_args(argv)
    if args.members < 2 or args.updates < 1 or args.updates > args.members or args.groups < 1:
        parser.error("need --members >= 2, --groups >= 1 and 1 <= --updates <= --members")

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        path = Path(tmp) / "unmentoring.json"
        ids = build_database(path, args.members, args.groups)
        Store.open(path).close()  # the first open keeps a backup; later opens find it unchanged
        naive_path = Path(tmp) / "naive.json"
        shutil.copyfile(path, naive_path)
        size_mb = path.stat().st_size / 1e6

        open_s, store = time_open(path)
        try:
            chosen = random.Random(SEED).sample(ids, args.updates)
            update_commit_s = time_updates(store, chosen)
        finally:
            store.close()
        first_group_lookup_s = verify(path, ids, set(chosen))
        naive_s, naive_timed = time_naive(naive_path, chosen, args.naive_sample)

    print(
        json.dumps(
            {
                "members": args.members,
                "groups": args.groups,
                "updates": args.updates,
                "file_mb": round(size_mb, 1),
                "open_s": round(open_s, 3),
                "update_commit_s": round(update_commit_s, 3),
                "naive_s": round(naive_s, 1),
                "naive_extrapolated": naive_timed < args.updates,
                "naive_timed_updates": naive_timed,
                "speedup": round(naive_s / update_commit_s, 1),
                "first_group_lookup_s": round(first_group_lookup_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
