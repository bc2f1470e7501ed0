"""A kill at any instant leaves the database holding exactly a prefix of the committed transactions."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from matcher.model import Member
from matcher.store import Store
from tests.helpers.store_committer import member_for

ROOT = Path(__file__).resolve().parents[1]
TRANSACTIONS = 200
TRIALS = 60


def run_and_kill(path: Path, seed: int, kill_after: int) -> int:
    """Start a committer, SIGKILL it once it has reported ``kill_after`` commits; return that count."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.store_committer", str(path), str(seed), str(TRANSACTIONS)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    acknowledged = 0
    try:
        while acknowledged < kill_after:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    return acknowledged


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_writer_leaves_a_prefix_of_its_transactions(tmp_path: Path, trial: int) -> None:
    rng = random.Random(trial)
    path = tmp_path / "db.json"
    # kill points spread over the run, including the very start and the very end
    kill_after = rng.choice([0, 1, TRANSACTIONS]) if trial < 6 else rng.randint(1, TRANSACTIONS - 1)
    acknowledged = run_and_kill(path, trial, kill_after)

    if not path.exists():
        assert acknowledged == 0
        return
    with Store.open(path) as store:
        count = store.get_meta("count", 0)
        assert acknowledged <= count <= TRANSACTIONS
        members = {m.id: m for m in store.all(Member)}
        counter = members.pop("counter", None)
        assert (counter.name if counter else "0") == str(count)
        assert sorted(members) == sorted(f"m{i}" for i in range(count))
        for i in range(count):
            assert members[f"m{i}"] == member_for(trial, i)
    assert not list(tmp_path.glob(".db.json.*.tmp")), "opening removes temp files left by the kill"
