"""Bench: the organisers' summary of a 2,000-member programme, through the real CLI.

Builds, in a fresh folder with its own unmentoring.toml, a programme of 2,000 members from about
100 organisations of very uneven size, who joined over two years (more each month, as a
programme grows); some left, some are paused. The last twelve months each ran a round, built
with the domain operations a real year would use, in time order: joins, leaves and pauses of the
month, ``rounds.start_round`` (the real pairing), answers by ``rounds.record_outcome`` (met,
missed with a reason, or silence) and ``rounds.close_round`` before the next round starts. No
mail is involved.

Then it times ``unmentoring --config FOLDER/unmentoring.toml summary --preview FOLDER/preview`` run
as a subprocess (start-up, loading the store, figures, the three pictures, composing the email),
checks that the .eml and the PNG pictures were written, and prints ONE JSON line:

  {"members": 2000, "rounds": 12, "build_seconds": ..., "preview_seconds": ...}

Target: preview_seconds < 30. See bench/README-summary.md for figures and how the pictures were
checked.

Run: .venv/bin/python bench/summary_preview.py [--out DIR] [--members 2000] [--seed 1]
(without --out the folder is temporary and removed at the end; with it, everything is kept there,
pictures in DIR/preview/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from matcher import rounds  # noqa: E402
from matcher.calendar import RoundDates, round_dates  # noqa: E402
from matcher.model import Member, MemberStatus, Result  # noqa: E402
from matcher.store import Store  # noqa: E402
from unmentoring.app import calendar_from_config  # noqa: E402
from unmentoring.config import load_config  # noqa: E402

HISTORY_MONTHS = 24  # members join over two years ...
ROUNDS = 12  # ... and the last twelve months each ran a round
FIRST_MONTH = (2025, 1)
PREVIEW_TARGET_SECONDS = 30.0

PLACES = (
    "Leeds",
    "Bristol",
    "Manchester",
    "Birmingham",
    "Sheffield",
    "Newcastle",
    "Norwich",
    "York",
    "Cardiff",
    "Glasgow",
    "Exeter",
    "Hackney",
    "Camden",
    "Brighton",
    "Oxford",
    "Cambridge",
    "Derby",
    "Kent",
    "Devon",
    "Cumbria",
)
KINDS = (
    "City Council",
    "County Council",
    "NHS Trust",
    "Fire and Rescue",
    "Police",
    "Housing",
    "University",
    "CCG",
    "Library Service",
    "Transport",
)
NATIONAL = (
    "Cabinet Office",
    "HMRC",
    "DVLA",
    "Met Office",
    "Ordnance Survey",
    "Land Registry",
    "Companies House",
    "ONS",
    "DWP",
    "Home Office",
)
FIRST = (
    "Ada Ben Chloe Dev Ed Fatima Gus Hana Ivan Jo Kemi Liam Maya Nils Omar Priya Quinn Rosa Sam "
    "Tara Umar Vera Wes Xia Yusuf Zoe Alex Bea Cai Dina Eli Faye Gil Hugo Iris Jack Kai Lena Milo "
    "Nora Olu Pia Raj Sofia Theo Uma Viktor Wen Yara Zac"
).split()
SURNAMES = (
    "Adams Baker Clarke Davies Evans Frost Green Hughes Irwin Jones Khan Lewis Morgan Nolan Owen "
    "Patel Quinn Roberts Singh Taylor Usman Vaughan Walker Young"
).split()
REASONS = (
    "she was ill that week",
    "we could not find a time",
    "I was on leave",
    "train strike",
    "diary clash with a budget meeting",
    "forgot, sorry!",
    "my partner never replied",
    "too busy this month",
    "school holidays",
    "moved to a new team",
)

TOML = """\
[programme]
name = "UnMentoring"
address = "unmentoring@example.org"
organisers = ["organiser@example.org"]
timezone = "Europe/London"
cadence = "first Monday"
data_dir = "data"
"""


def organisations(rng: random.Random, count: int) -> list[tuple[str, float]]:
    """``count`` organisations and a weight each: a few large employers, a long tail of small."""
    names = list(NATIONAL)
    while len(names) < count:
        name = f"{rng.choice(PLACES)} {rng.choice(KINDS)}"
        if name not in names:
            names.append(name)
    rng.shuffle(names)
    return [(name, 1.0 / (rank + 1) ** 0.9) for rank, name in enumerate(names[:count])]


def month_of(index: int) -> tuple[int, int]:
    total = FIRST_MONTH[0] * 12 + FIRST_MONTH[1] - 1 + index
    return total // 12, total % 12 + 1


def build_programme(folder: Path, members: int, seed: int) -> None:
    """The store of a programme after two years, the last twelve months with a closed round each."""
    config = load_config(folder / "unmentoring.toml", environ={})
    calendar = calendar_from_config(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    orgs = organisations(rng, 100)
    org_names, org_weights = zip(*orgs, strict=True)
    # Joins grow month by month; a handful are still waiting to confirm at the end.
    month_weights = [1 + month for month in range(HISTORY_MONTHS)]
    join_month = sorted(rng.choices(range(HISTORY_MONTHS), month_weights, k=members))
    with Store.open(config.database_path) as store:
        by_month: dict[int, list[Member]] = {m: [] for m in range(HISTORY_MONTHS)}
        for number, month in enumerate(join_month):
            y, m = month_of(month)
            first, last = rng.choice(FIRST), rng.choice(SURNAMES)
            joined = datetime(y, m, rng.randint(1, 28), rng.randint(7, 19), tzinfo=UTC)
            member = Member(
                id=f"{rng.getrandbits(64):016x}",
                address=f"{first.lower()}.{last.lower()}{number}@example.org",
                name=f"{first} {last}",
                org=rng.choices(org_names, org_weights)[0],
                about=rng.choice(("Service designer", "Data analyst", "Policy lead", "Developer")),
                status=MemberStatus.ACTIVE,
                frequency=rng.choices((1, 2, 3), (0.8, 0.15, 0.05))[0],
                joined_at=joined,
                created_at=joined - timedelta(hours=1),
            )
            by_month[month].append(member)
        for month in range(HISTORY_MONTHS):
            y, m = month_of(month)
            dates = round_dates(calendar, y, m) if month >= HISTORY_MONTHS - ROUNDS else None
            with store.transaction():
                month_start = datetime(y, m, 1, tzinfo=UTC)
                rounds.resume_due_pauses(store, month_start.date())
                joiners = by_month[month]
                if month == HISTORY_MONTHS - 1:  # some of the newest have not confirmed yet
                    for member in joiners[-12:]:
                        member.status, member.joined_at = MemberStatus.PENDING, None
                store.put_many(joiners)
                change_some(store, rng, month_start)
                if dates is not None:
                    run_round(store, dates, rng)
        stored = len(store.all(Member))
        if stored != members:
            raise SystemExit(f"built {stored} member records, expected {members}")


def change_some(store: Store, rng: random.Random, month_start: datetime) -> None:
    """About 0.7% of active members leave each month and 1% pause for one to three months."""
    for member in store.all(Member):
        if member.status is not MemberStatus.ACTIVE or member.joined_at is None:
            continue
        if member.joined_at >= month_start:
            continue
        roll = rng.random()
        if roll < 0.007:
            left = month_start + timedelta(days=rng.randint(0, 27), hours=12)
            store.put(replace(member, status=MemberStatus.LEFT, left_at=left))
        elif roll < 0.017:
            until = (month_start + timedelta(days=31 * rng.randint(1, 3))).date()
            store.put(replace(member, status=MemberStatus.PAUSED, pause_until=until))


def run_round(store: Store, dates: RoundDates, rng: random.Random) -> None:
    """Start the round, record what people answered, close it when the next one starts."""
    started = rounds.start_round(store, dates, dates.starts_at, seed=rng.getrandbits(32))
    answered_at = dates.starts_at + timedelta(days=8)
    for group in rounds.groups_of_round(store, started.id):
        roll = rng.random()
        speaker = rng.choice(group.members)
        if roll < 0.6:
            rounds.record_outcome(store, group.key, speaker, Result.MET, "", answered_at)
        elif roll < 0.78:
            reason = rng.choice(REASONS) if rng.random() < 0.7 else ""
            rounds.record_outcome(store, group.key, speaker, Result.MISSED, reason, answered_at)
    rounds.close_round(store, started.id, dates.closes_at)


def run_preview(folder: Path) -> tuple[float, Path]:
    out = folder / "preview"
    command = [
        sys.executable,
        "-m",
        "unmentoring",
        "--config",
        str(folder / "unmentoring.toml"),
        "summary",
        "--preview",
        str(out),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command[1:])}` failed (exit {result.returncode}):\n{result.stderr}")
    emails = list(out.glob("summary-*.eml"))
    pictures = sorted(p.name for p in out.glob("*.png"))
    if len(emails) != 1 or not {"growth.png", "network.png"} <= set(pictures):
        raise SystemExit(f"the preview wrote {[p.name for p in out.iterdir()]}")
    return elapsed, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the programme and the preview here")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="unmentoring-summary-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "data").exists():
        raise SystemExit(f"{folder / 'data'} exists: give an empty or new --out folder")
    try:
        (folder / "unmentoring.toml").write_text(TOML)
        started = time.perf_counter()
        build_programme(folder, args.members, args.seed)
        build_seconds = time.perf_counter() - started
        preview_seconds, _ = run_preview(folder)
    finally:
        if args.out is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        json.dumps(
            {
                "members": args.members,
                "rounds": ROUNDS,
                "build_seconds": round(build_seconds, 2),
                "preview_seconds": round(preview_seconds, 2),
            }
        )
    )
    return 0 if preview_seconds < PREVIEW_TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
