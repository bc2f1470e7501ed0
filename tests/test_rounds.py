"""The round lifecycle on a real store: eligibility, start, outcomes, close, ghosts, preview."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from matcher.calendar import Calendar, RoundDates, round_dates
from matcher.model import Group, Member, MemberStatus, Result, Round, RoundState
from matcher.rounds import (
    NotInGroup,
    RoundClosed,
    RoundError,
    UnknownGroup,
    UnknownRound,
    close_report,
    close_round,
    eligible_members,
    groups_of_member,
    groups_of_round,
    latest_open_group,
    members_of,
    preview_round,
    record_outcome,
    resume_due_pauses,
    start_round,
)
from matcher.store import Store
from unmentoring.cli_rounds import format_preview

CALENDAR = Calendar(
    zone=ZoneInfo("Europe/London"),
    which=0,
    weekday=0,
    start_time=time(9, 0),
    meeting_week=1,
    followup_weekday=0,
    reminder_after_days=5,
)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "db.json") as s:
        yield s


def month(m: int, year: int = 2026) -> RoundDates:
    return round_dates(CALENDAR, year, m)


def person(member_id: str, org: str = "", **fields) -> Member:
    fields.setdefault("status", MemberStatus.ACTIVE)
    return Member(id=member_id, address=f"{member_id}@example.org", name=member_id.title(), org=org, **fields)


def add(store: Store, *members: Member) -> None:
    with store.transaction():
        for m in members:
            store.put(m)


def ids(members: list[Member]) -> list[str]:
    return [m.id for m in members]


def started(store: Store, dates: RoundDates, seed: int = 1) -> Round:
    return start_round(store, dates, dates.starts_at, seed=seed)


def member_of(store: Store, member_id: str) -> Member:
    found = store.get(Member, member_id)
    assert found is not None
    return found


# -- eligibility


def test_only_active_members_not_on_a_running_pause_are_eligible(store: Store) -> None:
    on = date(2026, 3, 2)
    add(
        store,
        person("active"),
        person("pending", status=MemberStatus.PENDING),
        person("left", status=MemberStatus.LEFT),
        person("disabled", status=MemberStatus.DISABLED),
        person("paused_later", status=MemberStatus.PAUSED, pause_until=on + timedelta(days=1)),
        person("paused_until_today", status=MemberStatus.PAUSED, pause_until=on),
        person("paused_before", status=MemberStatus.PAUSED, pause_until=on - timedelta(days=9)),
        person("paused_open_ended", status=MemberStatus.PAUSED),
        Member(id="erased", address="", status=MemberStatus.ACTIVE, erased=True),
    )
    assert ids(eligible_members(store, on)) == ["active", "paused_before", "paused_until_today"]


def test_frequency_counts_rounds_from_the_last_group(store: Store) -> None:
    add(
        store,
        person("a1", frequency=1),
        person("b2", frequency=2),
        person("c3", frequency=3),
        person("d1", frequency=1),
    )
    started(store, month(1))
    assert sorted(m for g in groups_of_round(store, "2026-01") for m in g.members) == [
        "a1",
        "b2",
        "c3",
        "d1",
    ]
    add(store, person("e_new", frequency=3))

    assert ids(eligible_members(store, month(2).starts_on)) == ["a1", "d1", "e_new"]
    assert ids(eligible_members(store, month(3).starts_on)) == ["a1", "b2", "d1", "e_new"]
    assert ids(eligible_members(store, month(4).starts_on)) == ["a1", "b2", "c3", "d1", "e_new"]


def test_resume_due_pauses(store: Store) -> None:
    today = date(2026, 5, 4)
    add(
        store,
        person("due", status=MemberStatus.PAUSED, pause_until=today),
        person("overdue", status=MemberStatus.PAUSED, pause_until=today - timedelta(days=30)),
        person("later", status=MemberStatus.PAUSED, pause_until=today + timedelta(days=1)),
        person("ghost", status=MemberStatus.PAUSED),
    )
    resumed = resume_due_pauses(store, today)

    assert sorted(ids(resumed)) == ["due", "overdue"]
    for member_id in ("due", "overdue"):
        member = member_of(store, member_id)
        assert (member.status, member.pause_until) == (MemberStatus.ACTIVE, None)
    assert member_of(store, "later").status is MemberStatus.PAUSED
    assert member_of(store, "ghost").status is MemberStatus.PAUSED
    before = store.path.read_bytes()
    assert resume_due_pauses(store, today) == []
    assert store.path.read_bytes() == before


# -- starting


def test_start_records_the_round_and_groups_with_hosts(store: Store) -> None:
    add(store, *(person(f"m{i}", org=f"org{i % 3}") for i in range(5)))
    dates = month(3)
    now = dates.starts_at
    round_ = start_round(store, dates, now, seed=42)

    stored = store.get(Round, "2026-03")
    assert stored == round_
    assert (round_.ordinal, round_.seed, round_.state) == (dates.ordinal, 42, RoundState.STARTED)
    assert round_.starts_on == date(2026, 3, 2)
    assert round_.meeting_week_start == date(2026, 3, 2)
    assert round_.meeting_week_end == date(2026, 3, 8)
    assert round_.followup_on == date(2026, 3, 9)
    assert round_.created_at == now
    assert round_.unpaired == []

    groups = groups_of_round(store, "2026-03")
    assert [g.number for g in groups] == [1, 2]
    assert sorted(len(g.members) for g in groups) == [2, 3]
    assert sorted(m for g in groups for m in g.members) == ["m0", "m1", "m2", "m3", "m4"]
    for group in groups:
        assert group.host in group.members
        assert group.outcomes == {}
        assert store.get(Group, group.key) == group


def test_starting_twice_returns_the_same_round_and_writes_nothing(store: Store) -> None:
    add(store, *(person(f"m{i}") for i in range(4)))
    dates = month(3)
    first = start_round(store, dates, dates.starts_at)
    groups = groups_of_round(store, "2026-03")
    before = store.path.read_bytes()

    again = start_round(store, dates, dates.starts_at + timedelta(hours=1), seed=999)

    assert again == first
    assert groups_of_round(store, "2026-03") == groups
    assert store.path.read_bytes() == before
    assert isinstance(first.seed, int) and 0 <= first.seed < 2**32


def test_one_eligible_member_is_reported_unpaired(store: Store) -> None:
    add(store, person("alone"), person("away", status=MemberStatus.PAUSED))
    round_ = started(store, month(3))
    assert round_.unpaired == ["alone"]
    assert groups_of_round(store, "2026-03") == []


def test_nobody_eligible_makes_an_empty_round(store: Store) -> None:
    round_ = started(store, month(3))
    assert (round_.unpaired, groups_of_round(store, "2026-03")) == ([], [])


def test_history_reaches_the_pairing_no_repeats_and_hosts_rotate(store: Store) -> None:
    add(store, *(person(f"m{i}") for i in range(4)))
    pairs = []
    hosts = []
    for m in (1, 2, 3):
        started(store, month(m), seed=m)
        groups = groups_of_round(store, f"2026-{m:02d}")
        pairs.append({frozenset(g.members) for g in groups})
        hosts.append({g.host for g in groups})
    # Four people have exactly three ways to pair up: three rounds use each once.
    assert len(pairs[0] | pairs[1] | pairs[2]) == 6
    # Everyone hosts before anyone hosts twice (round 3 repeats a host, unavoidable with 4 people).
    assert hosts[0].isdisjoint(hosts[1])


def test_two_members_take_turns_to_host(store: Store) -> None:
    add(store, person("a"), person("b"))
    hosts = []
    for m in range(1, 7):
        started(store, month(m), seed=7)
        (group,) = groups_of_round(store, f"2026-{m:02d}")
        hosts.append(group.host)
    assert all(hosts[i] != hosts[i + 1] for i in range(5)), hosts


def test_organisations_are_compared_without_case_or_spacing(store: Store) -> None:
    add(
        store,
        person("a", org="Leeds CC"),
        person("b", org=" leeds  cc "),
        person("c", org="DWP"),
        person("d", org="dwp"),
    )
    started(store, month(3))
    for group in groups_of_round(store, "2026-03"):
        assert set(group.members) in ({"a", "c"}, {"a", "d"}, {"b", "c"}, {"b", "d"})


# -- outcomes


def test_outcomes_and_a_group_disputed_when_members_disagree(store: Store) -> None:
    add(store, *(person(f"m{i}") for i in range(4)))
    started(store, month(3))
    first, second = groups_of_round(store, "2026-03")
    at = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    reason = "We both forgot\nsecond line is dropped"
    group = record_outcome(store, first.key, first.members[0], Result.MISSED, reason, at)
    assert group.outcomes[first.members[0]].reason == "We both forgot"
    assert group.outcomes[first.members[0]].at == at
    assert not group.met and group.result() is Result.MISSED

    # Both answers stand: the group is disputed, neither met nor missed.
    group = record_outcome(store, first.key, first.members[1], Result.MET, "", at)
    assert not group.met and group.result() is Result.DISPUTED
    assert group.outcomes[first.members[0]].result is Result.MISSED
    assert store.get(Group, first.key) == group
    group = record_outcome(store, first.key, first.members[0], Result.MET, "", at)
    assert group.met and group.result() is Result.MET

    long_reason = "\n\n  " + "x" * 800
    group = record_outcome(store, second.key, second.members[0], Result.MISSED, long_reason, at)
    assert group.outcomes[second.members[0]].reason == "x" * 500
    # A later answer replaces the earlier one.
    group = record_outcome(store, second.key, second.members[0], Result.MET, "", at)
    assert group.outcomes[second.members[0]].result is Result.MET
    assert (group.outcomes[second.members[0]].reason, len(group.outcomes)) == ("", 1)


def test_bad_outcome_requests_are_refused_clearly_and_change_nothing(store: Store) -> None:
    add(store, *(person(f"m{i}") for i in range(4)))
    started(store, month(3))
    first, second = groups_of_round(store, "2026-03")
    at = datetime(2026, 3, 10, tzinfo=UTC)
    before = store.path.read_bytes()

    with pytest.raises(UnknownGroup, match="2026-03:9"):
        record_outcome(store, "2026-03:9", "m0", Result.MET, "", at)
    with pytest.raises(NotInGroup, match=second.members[0]):
        record_outcome(store, first.key, second.members[0], Result.MET, "", at)
    with pytest.raises(RoundError, match="met.*missed"):
        record_outcome(store, first.key, first.members[0], Result.NO_REPLY, "", at)
    assert store.path.read_bytes() == before

    close_round(store, "2026-03", at)
    with pytest.raises(RoundClosed, match="2026-03"):
        record_outcome(store, first.key, first.members[0], Result.MET, "", at)


def test_groups_of_member_and_latest_open_group(store: Store) -> None:
    add(store, person("a"), person("b"))
    assert latest_open_group(store, "a") is None
    started(store, month(3))
    started(store, month(4))
    assert [g.round_id for g in groups_of_member(store, "a")] == ["2026-03", "2026-04"]
    assert latest_open_group(store, "a").key == "2026-04:1"

    close_round(store, "2026-04", month(4).closes_at)
    assert latest_open_group(store, "a").key == "2026-03:1"
    close_round(store, "2026-03", month(4).closes_at)
    assert latest_open_group(store, "a") is None
    assert groups_of_member(store, "nobody") == []


# -- closing


def test_close_fills_no_reply_counts_silence_and_is_idempotent(store: Store) -> None:
    add(store, *(person(f"m{i}") for i in range(6)))
    started(store, month(3))
    met_group, missed_group, quiet_group = groups_of_round(store, "2026-03")
    at = datetime(2026, 3, 10, tzinfo=UTC)
    record_outcome(store, met_group.key, met_group.members[0], Result.MET, "", at)
    record_outcome(store, missed_group.key, missed_group.members[0], Result.MISSED, "ill", at)
    closing = month(3).closes_at

    report = close_round(store, "2026-03", closing)

    assert (report.round_id, report.met, report.missed, report.no_reply) == ("2026-03", 1, 1, 1)
    assert report.ghosts == []
    met_group, missed_group, quiet_group = groups_of_round(store, "2026-03")
    assert met_group.outcomes[met_group.members[1]].result is Result.NO_REPLY
    assert met_group.outcomes[met_group.members[1]].at == closing
    assert met_group.outcomes[met_group.members[0]].result is Result.MET
    assert missed_group.outcomes[missed_group.members[0]].reason == "ill"
    assert missed_group.outcomes[missed_group.members[1]].result is Result.NO_REPLY
    assert {o.result for o in quiet_group.outcomes.values()} == {Result.NO_REPLY}
    # The quiet partner of someone who met is not silent; the one of someone who missed is.
    silent = {m.id: m.silent_rounds for m in store.all(Member)}
    assert silent[met_group.members[0]] == silent[met_group.members[1]] == 0
    assert silent[missed_group.members[0]] == 0
    assert silent[missed_group.members[1]] == 1
    assert [silent[m] for m in quiet_group.members] == [1, 1]
    round_ = store.get(Round, "2026-03")
    assert (round_.state, round_.closed_at) == (RoundState.CLOSED, closing)

    before = store.path.read_bytes()
    again = close_round(store, "2026-03", closing + timedelta(days=3))
    assert again == report
    assert store.path.read_bytes() == before


def test_three_silent_rounds_in_a_row_make_a_ghost(store: Store) -> None:
    add(store, person("ghost"), person("slow"), person("p"), person("q"))
    reports = []
    for m in (1, 2, 3):
        dates = month(m)
        started(store, dates, seed=m)
        at = dates.followup_at
        for group in groups_of_round(store, dates.round_id):
            for member_id in group.members:
                # "slow" stays quiet twice, then answers; partners say "missed" so nobody met.
                if member_id != "ghost" and not (member_id == "slow" and m < 3):
                    record_outcome(store, group.key, member_id, Result.MISSED, "", at)
        reports.append(close_round(store, dates.round_id, dates.closes_at))

    assert [ids(r.ghosts) for r in reports] == [[], [], ["ghost"]]
    ghost = member_of(store, "ghost")
    assert (ghost.status, ghost.pause_until, ghost.silent_rounds) == (MemberStatus.PAUSED, None, 3)
    assert member_of(store, "slow").silent_rounds == 0
    assert member_of(store, "slow").status is MemberStatus.ACTIVE
    assert "ghost" not in ids(eligible_members(store, month(4).starts_on))
    # The stored report names the ghost again when the close is repeated.
    assert ids(close_round(store, "2026-03", month(3).closes_at).ghosts) == ["ghost"]


def test_only_active_members_become_ghosts(store: Store) -> None:
    add(store, person("a"), person("b"))
    started(store, month(3))
    with store.transaction():
        leaving = member_of(store, "b")
        leaving.status = MemberStatus.LEFT
        store.put(leaving)
    report = close_round(store, "2026-03", month(3).closes_at, ghost_rounds=1)
    assert ids(report.ghosts) == ["a"]
    assert member_of(store, "b").status is MemberStatus.LEFT


def test_closing_an_unknown_round_is_refused(store: Store) -> None:
    with pytest.raises(UnknownRound, match="2026-03"):
        close_round(store, "2026-03", month(3).closes_at)
    with pytest.raises(UnknownRound, match="2026-03"):
        close_report(store, "2026-03")


def test_close_report_of_an_open_round_and_of_a_closed_one(store: Store) -> None:
    add(store, *(person(f"m{i}") for i in range(4)))
    started(store, month(3))
    first, _ = groups_of_round(store, "2026-03")
    record_outcome(store, first.key, first.members[0], Result.MET, "", month(3).followup_at)

    so_far = close_report(store, "2026-03")
    assert (so_far.met, so_far.missed, so_far.no_reply, so_far.ghosts) == (1, 0, 1, [])

    closed = close_round(store, "2026-03", month(3).closes_at, ghost_rounds=1)
    assert sorted(ids(closed.ghosts)) == sorted(groups_of_round(store, "2026-03")[1].members)
    assert close_report(store, "2026-03") == closed


# -- preview


def test_preview_changes_nothing_and_matches_the_start(store: Store) -> None:
    add(store, *(person(f"m{i}", org=f"Org {i}") for i in range(7)))
    before = store.path.read_bytes()
    mtime = store.path.stat().st_mtime_ns

    preview = preview_round(store, month(3), seed=5)

    assert store.path.read_bytes() == before and store.path.stat().st_mtime_ns == mtime
    assert store.get(Round, "2026-03") is None
    assert (preview.round_id, preview.seed, preview.already_started) == ("2026-03", 5, False)
    assert preview.people == 7 and (preview.repeats, preview.same_org) == (0, 0)
    started(store, month(3), seed=5)
    recorded = [(g.members, g.host) for g in groups_of_round(store, "2026-03")]
    assert [(ids(g.members), g.host.id) for g in preview.groups] == recorded

    shown = preview_round(store, month(3), seed=0)
    assert shown.already_started and shown.seed == 5
    assert [(ids(g.members), g.host.id) for g in shown.groups] == recorded


def test_without_a_seed_the_preview_shows_what_the_round_will_make(store: Store) -> None:
    add(store, *(person(f"m{i}", org=f"Org {i % 3}") for i in range(9)))
    preview = preview_round(store, month(4))
    with store.transaction():
        start_round(store, month(4), datetime(2026, 4, 6, 9, tzinfo=UTC))
    assert store.get(Round, "2026-04").seed == preview.seed
    recorded = [(g.members, g.host) for g in groups_of_round(store, "2026-04")]
    assert [(ids(g.members), g.host.id) for g in preview.groups] == recorded
    assert preview_round(store, month(5)).seed != preview.seed


def test_preview_flags_repeats_and_same_organisation(store: Store) -> None:
    add(store, person("ann", org="Leeds CC"), person("bob", org="leeds cc"))
    started(store, month(2))
    preview = preview_round(store, month(3))

    (group,) = preview.groups
    assert [(a.id, b.id, when) for a, b, when in group.repeats] == [("ann", "bob", "2026-02")]
    assert [(a.id, b.id) for a, b in group.same_org] == [("ann", "bob")]
    text = format_preview(preview)
    assert "Ann (Leeds CC)" in text and "Bob (leeds cc)" in text
    assert "repeat: Ann and Bob last met in round 2026-02" in text
    assert "same organisation: Ann and Bob" in text


def test_preview_text_for_unpaired_and_empty_rounds(store: Store) -> None:
    assert "Nobody is eligible" in format_preview(preview_round(store, month(3)))
    add(store, person("solo", org="DWP"))
    text = format_preview(preview_round(store, month(3)))
    assert "Unpaired (nobody to pair with): Solo (DWP)" in text


def test_members_of_keeps_order_and_skips_missing(store: Store) -> None:
    add(store, person("a"), person("b"))
    assert ids(members_of(store, ["b", "gone", "a"])) == ["b", "a"]
