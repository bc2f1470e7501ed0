"""The round lifecycle as data: who is eligible, starting a round, outcomes, closing it.

Store operations only: no mail, no clock (``now`` is passed in), and no transactions: each operation
that changes anything runs inside the caller's ``store.transaction()`` (whoever runs the unit of work
opens it: a cycle step, a CLI command, an inbound batch; see ARCHITECTURE.md), and each is idempotent
where a scheduler may repeat it (start, close, resume).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import combinations
from typing import TYPE_CHECKING

from matcher import preferences
from matcher.calendar import RoundDates, ordinal_of, parse_round_id
from matcher.model import Group, Member, MemberStatus, Outcome, Result, Round, RoundState
from matcher.store import Store

if TYPE_CHECKING:  # numpy and networkx load only when a round is paired: the other commands start fast
    from matcher.pairing import PastGroup

REASON_MAX_CHARS = 500
_CLOSE_REPORT_META = "close_report:"


class RoundError(ValueError):
    """A request about rounds or groups that cannot be applied; the message says why."""


class UnknownGroup(RoundError):
    pass


class NotInGroup(RoundError):
    pass


class RoundClosed(RoundError):
    pass


class UnknownRound(RoundError):
    pass


@dataclass(frozen=True)
class Results:
    """Groups counted by their result (``Group.result``; a group nobody has answered for counts as
    no reply): the one count that the close report, the summary and the CLI show."""

    groups: int = 0
    people: int = 0
    met: int = 0
    missed: int = 0
    no_reply: int = 0
    disputed: int = 0  # one member said met and another missed
    rematches: int = 0  # groups formed during the round (matcher/rematch.py), counted in the above too
    rematches_met: int = 0

    @property
    def rematch_line(self) -> str:
        return f"{self.rematches} rematches, {self.rematches_met} met"


def results_of(groups: Sequence[Group]) -> Results:
    counts = Counter(g.result() or Result.NO_REPLY for g in groups)
    return Results(
        groups=len(groups),
        people=sum(len(g.members) for g in groups),
        met=counts[Result.MET],
        missed=counts[Result.MISSED],
        no_reply=counts[Result.NO_REPLY],
        disputed=counts[Result.DISPUTED],
        rematches=sum(1 for g in groups if g.rematch),
        rematches_met=sum(1 for g in groups if g.rematch and g.met),
    )


@dataclass
class CloseReport:
    round_id: str
    ghosts: list[Member]
    met: int  # groups by result (results_of)
    missed: int
    no_reply: int
    disputed: int = 0


@dataclass(frozen=True)
class PreviewGroup:
    number: int
    members: list[Member]
    host: Member
    repeats: list[tuple[Member, Member, str]]  # a pair that met before, and their last round
    same_org: list[tuple[Member, Member]]


@dataclass(frozen=True)
class RoundPreview:
    round_id: str
    starts_on: date
    seed: int
    already_started: bool  # the groups shown are the recorded ones, not a fresh pairing
    groups: list[PreviewGroup] = field(default_factory=list)
    unpaired: list[Member] = field(default_factory=list)

    @property
    def people(self) -> int:
        return sum(len(g.members) for g in self.groups) + len(self.unpaired)

    @property
    def repeats(self) -> int:
        return sum(len(g.repeats) for g in self.groups)

    @property
    def same_org(self) -> int:
        return sum(len(g.same_org) for g in self.groups)


# -- members


def is_active_on(member: Member, on: date) -> bool:
    """Active on that date: status active and no pause running, or a dated pause that has ended.

    A pause without a date (a ghost, or "pause" with no end) lasts until the member says "resume".
    """
    if not member.address or member.erased:
        return False
    if member.status is MemberStatus.ACTIVE:
        return member.pause_until is None or member.pause_until <= on
    if member.status is MemberStatus.PAUSED:
        return member.pause_until is not None and member.pause_until <= on
    return False


def eligible_members(store: Store, on: date) -> list[Member]:
    """Members to pair in the round starting on ``on`` (the round is the one of ``on``'s month).

    Active on that date (a dated pause that has ended counts, see ``resume_due_pauses``), and
    frequency due: a member with frequency N is in every N-th round counted from the round of their
    last group; a member never grouped is due. Sorted by member id, so that a pairing seed means the
    same thing every time.
    """
    ordinal = ordinal_of(on.year, on.month)
    return _eligible(store, on, past_groups(store, before=ordinal + 1))


def _eligible(store: Store, on: date, history: Iterable[PastGroup]) -> list[Member]:
    ordinal = ordinal_of(on.year, on.month)
    last: dict[str, int] = {}
    for past in history:
        for member_id in past.members:
            if last.get(member_id, -1) < past.round:
                last[member_id] = past.round
    eligible = []
    for member in store.all(Member):
        if not is_active_on(member, on):
            continue
        previous = last.get(member.id)
        if previous is None or ordinal - previous >= max(1, member.frequency):
            eligible.append(member)
    eligible.sort(key=lambda m: m.id)
    return eligible


def resume_due_pauses(store: Store, today: date) -> list[Member]:
    """Members paused until ``today`` or earlier become active again; returns them as now stored.

    Pauses without an end date (ghosts, "pause" alone) are left alone: they end with "resume".
    """
    resumed = []
    for member in store.all(Member):
        if (
            member.status is MemberStatus.PAUSED
            and member.pause_until is not None
            and member.pause_until <= today
        ):
            member.status = MemberStatus.ACTIVE
            member.pause_until = None
            resumed.append(member)
    store.update_many(resumed)
    return resumed


# -- starting a round


def start_round(store: Store, dates: RoundDates, now: datetime, *, seed: int | None = None) -> Round:
    """Pair the eligible members and record the round and its groups.

    Idempotent: if the round is already recorded, it is returned unchanged (whatever ``seed`` says).
    The seed is stored so that the pairing can be reproduced. Members' wishes are honoured
    (matcher/preferences.py): someone nobody can be grouped with (a single eligible member, or a
    "never" pair that cannot be avoided) is recorded in ``Round.unpaired``; the meet-again requests a
    group honours are used up.

    Members whose dated pause has ended are paired, but their status is left to
    ``resume_due_pauses`` (which the scheduler runs so that they are told they are back).
    """
    existing = store.get(Round, dates.round_id)
    if existing is not None:
        return existing
    from matcher.pairing import Person, make_pairing

    if seed is None:
        seed = round_seed(dates.round_id)
    # No group of this round exists yet, so the history before it also decides eligibility.
    history = past_groups(store, before=dates.ordinal)
    members = _eligible(store, dates.starts_on, history)
    wishes = preferences.for_round(store, members)
    people = [Person(id=m.id, org=normalise_org(m.org)) for m in members]
    pairing = make_pairing(people, history, seed, never=wishes.never, again=wishes.again)
    round_ = Round(
        id=dates.round_id,
        ordinal=dates.ordinal,
        starts_on=dates.starts_on,
        meeting_week_start=dates.meeting_week_start,
        meeting_week_end=dates.meeting_week_end,
        followup_on=dates.followup_on,
        seed=seed,
        created_at=now,
        unpaired=list(pairing.unpaired),
        schedule=dates.schedule,
    )
    groups = [
        Group(round_id=dates.round_id, number=n, members=list(g.members), host=g.host)
        for n, g in enumerate(pairing.groups, start=1)
    ]
    store.put(round_)
    store.put_many(groups)
    preferences.used_up(store, wishes, (g.members for g in groups))
    return round_


def round_seed(round_id: str) -> int:
    """The pairing seed a round uses unless told otherwise: fixed per round, so that a preview shows the
    groups the round will make (as long as nobody joins or leaves in between)."""
    return int.from_bytes(hashlib.sha256(f"unmentoring round {round_id}".encode()).digest()[:4], "big")


def preview_round(store: Store, dates: RoundDates, *, seed: int | None = None) -> RoundPreview:
    """What ``start_round`` would do with this seed, changing nothing.

    For a round already started, the recorded groups and seed are shown instead.
    """
    existing = store.get(Round, dates.round_id)
    members_by_id = {m.id: m for m in store.all(Member)}
    history = past_groups(store, before=dates.ordinal)
    if existing is not None:
        raw_groups = [(g.members, g.host) for g in groups_of_round(store, existing.id)]
        unpaired_ids = list(existing.unpaired)
        seed = existing.seed
    else:
        from matcher.pairing import Person, make_pairing

        seed = round_seed(dates.round_id) if seed is None else seed
        eligible = _eligible(store, dates.starts_on, history)
        people = [Person(id=m.id, org=normalise_org(m.org)) for m in eligible]
        wishes = preferences.for_round(store, eligible)
        pairing = make_pairing(people, history, seed, never=wishes.never, again=wishes.again)
        raw_groups = [(list(g.members), g.host) for g in pairing.groups]
        unpaired_ids = list(pairing.unpaired)
    last_met = _last_met_rounds(history)
    round_id_by_ordinal = {r.ordinal: r.id for r in store.all(Round)}

    def member(member_id: str) -> Member:
        # A member erased or removed since a started round was recorded still has a place in it.
        return members_by_id.get(member_id) or Member(id=member_id, address="", erased=True)

    groups = []
    for number, (ids, host) in enumerate(raw_groups, start=1):
        repeats = []
        same_org = []
        for a, b in combinations(ids, 2):
            met_in = last_met.get(_pair_key(a, b))
            if met_in is not None:
                label = round_id_by_ordinal.get(met_in, _round_label(met_in))
                repeats.append((member(a), member(b), label))
            if _same_org(member(a), member(b)):
                same_org.append((member(a), member(b)))
        groups.append(
            PreviewGroup(
                number=number,
                members=[member(i) for i in ids],
                host=member(host),
                repeats=repeats,
                same_org=same_org,
            )
        )
    return RoundPreview(
        round_id=dates.round_id,
        starts_on=dates.starts_on,
        seed=seed,
        already_started=existing is not None,
        groups=groups,
        unpaired=[member(i) for i in unpaired_ids],
    )


# -- groups and outcomes


def members_of(store: Store, ids: Sequence[str]) -> list[Member]:
    """The stored members with these ids, in that order, skipping any no longer stored."""
    return [m for m in (store.get(Member, i) for i in ids) if m is not None]


def groups_of_round(store: Store, round_id: str) -> list[Group]:
    return sorted(store.find(Group, "round_id", round_id), key=lambda g: g.number)


def groups_of_member(store: Store, member_id: str) -> list[Group]:
    """The member's groups, oldest round first."""
    ordinals: dict[str, int] = {}
    return sorted(
        store.find(Group, "member", member_id),
        key=lambda g: (_ordinal_of_round(store, g.round_id, ordinals), g.number),
    )


def latest_open_group(store: Store, member_id: str) -> Group | None:
    """The member's group in the latest round not yet closed, if any."""
    for group in reversed(groups_of_member(store, member_id)):
        round_ = store.get(Round, group.round_id)
        if round_ is None or round_.state is not RoundState.CLOSED:
            return group
    return None


def record_outcome(
    store: Store, group_key: str, member_id: str, result: Result, reason: str, now: datetime
) -> Group:
    """Record one member's answer for their group: met or missed, with an optional reason.

    The reason keeps its first non-empty line, at most 500 characters. A later answer from the same
    member replaces the earlier one; each member's answer stands on its own, so a "met" and a
    "missed" in one group make it disputed (``Group.result``). Answers for a closed round are
    refused (``RoundClosed``): its outcomes and ghosts have been settled and reported.
    """
    if result not in (Result.MET, Result.MISSED):
        raise RoundError(f"an answer is 'met' or 'missed', not {str(result)!r}")
    # Checked before any change: a refused request leaves the caller's transaction clean.
    group = store.get(Group, group_key)
    if group is None:
        raise UnknownGroup(f"no group {group_key!r}")
    if member_id not in group.members:
        raise NotInGroup(f"member {member_id} is not in group {group_key}")
    round_ = store.get(Round, group.round_id)
    if round_ is not None and round_.state is RoundState.CLOSED:
        raise RoundClosed(f"round {group.round_id} is closed; answers are no longer recorded")
    group.outcomes[member_id] = Outcome(result=result, reason=clean_reason(reason), at=now)
    store.put(group)
    return group


def clean_reason(reason: str) -> str:
    first = next((line.strip() for line in (reason or "").splitlines() if line.strip()), "")
    return first[:REASON_MAX_CHARS]


# -- closing


def close_round(store: Store, round_id: str, now: datetime, *, ghost_rounds: int = 3) -> CloseReport:
    """Settle a round: unanswered outcomes become no_reply, silence is counted, ghosts are paused.

    Silence: a member answered the round if they said met or missed themselves, or if a partner
    said "met", even in a disputed group (then they evidently met, and staying quiet about it is not
    ghosting). A partner's "missed" does not count for them. A member who answered gets
    ``silent_rounds = 0``; one who did not gets ``silent_rounds + 1``, and at ``ghost_rounds`` in a
    row an active member is paused with no end date and listed as a ghost (to be told how to come
    back). Members who left, are disabled or are already paused keep their status.

    Idempotent: closing a closed round changes nothing and returns the report made the first time.
    """
    round_ = store.get(Round, round_id)
    if round_ is None:
        raise UnknownRound(f"no round {round_id!r}")
    if round_.state is RoundState.CLOSED:
        return close_report(store, round_id)
    groups = groups_of_round(store, round_id)
    answered: dict[str, bool] = {}
    for group in groups:
        someone_met = any(o.result is Result.MET for o in group.outcomes.values())
        for member_id in group.members:
            own = group.outcomes.get(member_id)
            said = own is not None and own.result in (Result.MET, Result.MISSED)
            answered[member_id] = answered.get(member_id, False) or said or someone_met
            if own is None:
                group.outcomes[member_id] = Outcome(result=Result.NO_REPLY, at=now)
    store.update_many(groups)
    results = results_of(groups)

    changed: list[Member] = []
    ghosts: list[Member] = []
    today = now.date()
    for member_id, did_answer in answered.items():
        member = store.get(Member, member_id)
        if member is None:
            continue
        member.silent_rounds = 0 if did_answer else member.silent_rounds + 1
        if member.silent_rounds >= ghost_rounds and is_active_on(member, today):
            member.status = MemberStatus.PAUSED
            member.pause_until = None
            ghosts.append(member)
        changed.append(member)
    store.update_many(changed)

    round_.state = RoundState.CLOSED
    round_.closed_at = now
    store.put(round_)
    report = CloseReport(
        round_id=round_id,
        ghosts=ghosts,
        met=results.met,
        missed=results.missed,
        no_reply=results.no_reply,
        disputed=results.disputed,
    )
    store.set_meta(
        _CLOSE_REPORT_META + round_id,
        {
            "ghosts": [m.id for m in ghosts],
            "met": report.met,
            "missed": report.missed,
            "no_reply": report.no_reply,
            "disputed": report.disputed,
        },
    )
    return report


def close_report(store: Store, round_id: str) -> CloseReport:
    """The report of a round: for a closed round, the one made when it closed (with its ghosts).

    For a round still open: the groups counted by their result so far (a group nobody has answered
    for counts as no reply) and no ghosts, since ghosts are decided only at closing.
    """
    round_ = store.get(Round, round_id)
    if round_ is None:
        raise UnknownRound(f"no round {round_id!r}")
    data = store.get_meta(_CLOSE_REPORT_META + round_id)
    if round_.state is RoundState.CLOSED and data is not None:
        ghosts = [m for m in (store.get(Member, i) for i in data["ghosts"]) if m is not None]
        # "disputed" is absent from reports stored before disputes were counted: there were none.
        return CloseReport(
            round_id, ghosts, data["met"], data["missed"], data["no_reply"], data.get("disputed", 0)
        )
    results = results_of(groups_of_round(store, round_id))
    return CloseReport(round_id, [], results.met, results.missed, results.no_reply, results.disputed)


# -- helpers


def normalise_org(org: str) -> str:
    """Organisations compare without case or spacing differences ("Leeds  CC" is "leeds cc")."""
    return " ".join(org.split()).casefold()


def _same_org(a: Member, b: Member) -> bool:
    org = normalise_org(a.org)
    return bool(org) and org == normalise_org(b.org)


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _last_met_rounds(history: Iterable[PastGroup]) -> dict[tuple[str, str], int]:
    last: dict[tuple[str, str], int] = {}
    for past in history:
        for a, b in combinations(sorted(set(past.members)), 2):
            if last.get((a, b), -1) < past.round:
                last[(a, b)] = past.round
    return last


def _round_ordinals(store: Store) -> dict[str, int]:
    return {r.id: r.ordinal for r in store.all(Round)}


def _ordinal_of_round(store: Store, round_id: str, cache: dict[str, int]) -> int:
    if round_id not in cache:
        round_ = store.get(Round, round_id)
        if round_ is not None:
            cache[round_id] = round_.ordinal
        else:
            cache[round_id] = ordinal_of(*parse_round_id(round_id))
    return cache[round_id]


def past_groups(store: Store, *, before: int) -> list[PastGroup]:
    """Every recorded group of a round earlier than ordinal ``before``, for the pairing's costs."""
    from matcher.pairing import PastGroup

    ordinals = _round_ordinals(store)
    history = []
    for group in store.all(Group):
        ordinal = ordinals.get(group.round_id)
        if ordinal is None:
            ordinal = ordinal_of(*parse_round_id(group.round_id))
        if ordinal < before:
            history.append(PastGroup(round=ordinal, members=tuple(group.members), host=group.host))
    return history


def _round_label(ordinal: int) -> str:
    year, month_index = divmod(ordinal, 12)
    return f"{year:04d}-{month_index + 1:02d}"
