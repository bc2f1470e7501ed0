"""Member operations on a real store: join, leave, pause, profile, bounces, erasure, my data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from matcher import members as ops
from matcher import tokens
from matcher.model import Group, Member, MemberStatus, Outcome, Result, Round, Token
from matcher.store import Store

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "db.json") as opened:
        yield opened


def joined(store: Store, address: str, **profile: str) -> Member:
    with store.transaction():
        member = ops.start_joining(store, address, profile, NOW)
        return ops.activate(store, member, NOW)


def test_start_joining_creates_a_pending_record_with_the_profile(store: Store) -> None:
    with store.transaction():
        member = ops.start_joining(
            store, "Ann@Example.org", {"name": "Ann Lee", "org": "Council", "x": "ignored"}, NOW
        )
    stored = store.get(Member, member.id)
    assert stored.address == "ann@example.org"
    assert (stored.name, stored.org, stored.about) == ("Ann Lee", "Council", "")
    assert stored.status is MemberStatus.PENDING
    assert stored.created_at == NOW and stored.joined_at is None
    assert ops.find_member(store, "ann@example.org") == stored
    assert not ops.is_member(stored)


def test_joining_again_after_leaving_reuses_the_record(store: Store) -> None:
    member = joined(store, "ann@example.org", name="Ann")
    with store.transaction():
        left = ops.mark_left(store, member, NOW + timedelta(days=1))
        again = ops.start_joining(store, "ann@example.org", {"org": "NHS"}, NOW + timedelta(days=2))
    assert left.status is MemberStatus.LEFT and left.left_at == NOW + timedelta(days=1)
    assert again.id == member.id
    assert (again.status, again.name, again.org) == (MemberStatus.PENDING, "Ann", "NHS")
    assert len(store.all(Member)) == 1


def test_start_joining_refuses_a_current_member(store: Store) -> None:
    joined(store, "ann@example.org")
    with store.transaction(), pytest.raises(ops.MemberError, match="already active"):
        ops.start_joining(store, "ann@example.org", {}, NOW)


def test_activate_gives_a_clean_slate(store: Store) -> None:
    with store.transaction():
        member = ops.start_joining(store, "ann@example.org", {}, NOW)
        member.bounce_score, member.silent_rounds = 2, 3
        later = NOW + timedelta(hours=3)
        active = ops.activate(store, member, later)
    assert active.status is MemberStatus.ACTIVE
    assert (active.joined_at, active.bounce_score, active.silent_rounds) == (later, 0, 0)


def test_leaving_retires_the_members_tokens(store: Store) -> None:
    member = joined(store, "ann@example.org")
    with store.transaction():
        token = tokens.member_token(store, member, NOW)
        ops.mark_left(store, member, NOW)
    assert not store.get(Token, token.token).is_valid(NOW)


def test_pause_and_resume(store: Store) -> None:
    member = joined(store, "ann@example.org")
    with store.transaction():
        paused = ops.pause(store, member, date(2026, 3, 1))
    assert (paused.status, paused.pause_until) == (MemberStatus.PAUSED, date(2026, 3, 1))
    with store.transaction():
        resumed = ops.resume(store, paused)
    assert (resumed.status, resumed.pause_until) == (MemberStatus.ACTIVE, None)


def test_resuming_a_disabled_member_resets_bounces_and_silence(store: Store) -> None:
    member = joined(store, "ann@example.org")
    member.status, member.bounce_score, member.silent_rounds = MemberStatus.DISABLED, 3, 2
    with store.transaction():
        resumed = ops.resume(store, member)
    assert (resumed.status, resumed.bounce_score, resumed.silent_rounds) == (
        MemberStatus.ACTIVE,
        0,
        0,
    )


@pytest.mark.parametrize("frequency", [0, 4, -1])
def test_frequency_outside_one_to_three_is_refused(store: Store, frequency: int) -> None:
    member = joined(store, "ann@example.org")
    with store.transaction(), pytest.raises(ops.MemberError, match="1, 2 or 3"):
        ops.set_frequency(store, member, frequency)
    with store.transaction():
        assert ops.set_frequency(store, member, 3).frequency == 3


def test_profile_values_are_one_line_and_capped() -> None:
    cleaned = ops.clean_profile(
        {
            "name": "Ann\r\nBcc: victim@example.org",
            "org": "  Big\tCouncil  ",
            "about": "x" * 900,
            "role": "ignored",
        }
    )
    assert cleaned["name"] == "Ann Bcc: victim@example.org"
    assert "\n" not in cleaned["name"] and "\r" not in cleaned["name"]
    assert cleaned["org"] == "Big Council"
    assert len(cleaned["about"]) == 500
    assert "role" not in cleaned


def test_profile_update_needs_a_field(store: Store) -> None:
    member = joined(store, "ann@example.org", name="Ann")
    with store.transaction(), pytest.raises(ops.MemberError, match="name: "):
        ops.update_profile(store, member, {"name": "   "})
    with store.transaction():
        updated = ops.update_profile(store, member, {"about": "Roads and bridges"})
    assert (updated.name, updated.about) == ("Ann", "Roads and bridges")


def test_bounces_disable_at_the_threshold_once(store: Store) -> None:
    member = joined(store, "ann@example.org")
    results = []
    with store.transaction():
        for _ in range(4):
            member, disabled = ops.record_bounce(store, member, threshold=3)
            results.append((member.bounce_score, member.status, disabled))
    assert results == [
        (1, MemberStatus.ACTIVE, False),
        (2, MemberStatus.ACTIVE, False),
        (3, MemberStatus.DISABLED, True),
        (4, MemberStatus.DISABLED, False),
    ]


def add_round(store: Store, round_id: str, ordinal: int, groups: list[Group]) -> None:
    start = date(2026, ordinal % 12 + 1, 5)
    with store.transaction():
        store.put(
            Round(
                id=round_id,
                ordinal=ordinal,
                starts_on=start,
                meeting_week_start=start,
                meeting_week_end=start + timedelta(days=6),
                followup_on=start + timedelta(days=7),
                seed=1,
            )
        )
        for group in groups:
            store.put(group)


def test_erase_removes_personal_data_but_keeps_groups(store: Store) -> None:
    ann = joined(store, "ann@example.org", name="Ann", org="Council", about="roads")
    bob = joined(store, "bob@example.org", name="Bob")
    add_round(store, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)])
    with store.transaction():
        tokens.member_token(store, ann, NOW)
        erased = ops.erase(store, ann, NOW + timedelta(days=1))
    stored = store.get(Member, ann.id)
    assert stored == erased
    assert (stored.address, stored.name, stored.org, stored.about) == ("", "", "", "")
    assert stored.erased and stored.status is MemberStatus.LEFT
    assert store.find(Token, "member_id", ann.id) == []
    assert ops.find_member(store, "ann@example.org") is None
    assert store.get(Group, "2026-01:1").members == [ann.id, bob.id]
    text = store.path.read_text()
    assert "ann@example.org" not in text and "roads" not in text


def test_member_data_holds_everything_but_token_values(store: Store) -> None:
    ann = joined(store, "ann@example.org", name="Ann", org="Council")
    bob = joined(store, "bob@example.org", name="Bob")
    cat = joined(store, "cat@example.org", name="Cat")
    met = Group("2026-01", 1, [ann.id, bob.id], host=bob.id)
    met.outcomes = {ann.id: Outcome(Result.MET, at=NOW), bob.id: Outcome(Result.MET, at=NOW)}
    add_round(store, "2026-01", 24312, [met])
    add_round(store, "2026-02", 24313, [Group("2026-02", 1, [ann.id, cat.id], host=ann.id)])
    with store.transaction():
        token = tokens.member_token(store, ann, NOW)
        ops.erase(store, cat, NOW)

    data = ops.member_data(store, store.get(Member, ann.id))

    json.dumps(data)  # JSON-able as promised
    assert data["member"]["address"] == "ann@example.org"
    assert data["member"]["org"] == "Council"
    assert [(g["round"], g["partners"], g["host"], g["group_result"]) for g in data["groups"]] == [
        ("2026-01", ["Bob"], "Bob", "met"),
        ("2026-02", [ops.FORMER_MEMBER], "Ann", None),
    ]
    assert data["groups"][0]["your_answer"]["result"] == "met"
    assert data["met"] == 1
    assert data["tokens"] == [
        {"purpose": "member", "created_at": NOW.isoformat(), "expires_at": None, "used": False}
    ]
    assert token.token not in json.dumps(data)
    assert ops.history_counts(store, store.get(Member, ann.id)) == (2, 1)
