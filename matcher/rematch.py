"""Nobody stranded: a member whose partner is gone mid-round may ask to be grouped again that round.

Store operations only, run inside the caller's transaction (see matcher/rounds.py). A group loses a
member when that member is no longer active (left, paused, disabled after bounces, erased): if one
member remains, they are stranded and may ask for a rematch; so may anyone who has heard nothing from
their partner by the middle of the meeting week. Whoever asked waits in ``Round.waiting``; waiting
members are paired with each other by the same matcher as the round (history, other organisations,
"never pair me with"), each new group a ``Group`` of the same round with ``rematch`` set. Nobody waits
past the end of the meeting week: then the waiting list is emptied and its members are told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from matcher import preferences
from matcher.model import Group, Member, Round, RoundState
from matcher.rounds import groups_of_round, is_active_on, latest_open_group, normalise_org, past_groups
from matcher.store import Store

# What a rematch request came to (the answer's words are chosen by the template).
Asked = StrEnum("Asked", ["WAITING", "TOO_EARLY", "TOO_LATE", "NO_GROUP"])


@dataclass(frozen=True)
class Request:
    outcome: Asked
    round_: Round | None = None


def middle_of_meeting_week(round_: Round) -> date:
    return round_.meeting_week_start + (round_.meeting_week_end - round_.meeting_week_start) / 2


def remaining(store: Store, group: Group, on: date) -> list[Member]:
    """The group's members still taking part on ``on``."""
    found = (store.get(Member, i) for i in group.members)
    return [m for m in found if m is not None and is_active_on(m, on)]


def stranded(store: Store, round_id: str, on: date) -> list[tuple[Group, Member]]:
    """Each group of the round that lost members and has one left, with that member; a group that
    said it met is not stranded (they met before the partner went). A triple that lost one goes on
    as a pair."""
    found = []
    groups = groups_of_round(store, round_id)
    for group in groups:
        left = remaining(store, group, on)
        if (
            len(left) == 1
            and len(group.members) > 1
            and not group.met
            and not moved_on(groups, group, left[0].id)
        ):
            found.append((group, left[0]))
    return found


def moved_on(groups: list[Group], group: Group, member_id: str) -> bool:
    """The member is in a later group of the same round (a rematch): ``group`` is behind them."""
    return any(
        g.number > group.number and member_id in g.members for g in groups if g.round_id == group.round_id
    )


def ask(store: Store, member: Member, on: date) -> Request:
    """Put ``member`` on their open round's waiting list, if they may ask now (see the module)."""
    group = latest_open_group(store, member.id)
    round_ = store.get(Round, group.round_id) if group is not None else None
    if group is None or round_ is None or round_.state is not RoundState.STARTED:
        return Request(Asked.NO_GROUP)
    if on > round_.meeting_week_end:
        return Request(Asked.TOO_LATE, round_)
    partner_gone = len(remaining(store, group, on)) < 2
    if not partner_gone and on < middle_of_meeting_week(round_):
        return Request(Asked.TOO_EARLY, round_)
    if member.id not in round_.waiting:
        round_.waiting = [*round_.waiting, member.id]
        store.put(round_)
    return Request(Asked.WAITING, round_)


def pair_waiting(store: Store, round_id: str, on: date) -> list[Group]:
    """Group the round's waiting members with each other; return the new groups (stored). Whoever
    is no longer active leaves the list; whoever the matcher could not place keeps waiting."""
    from matcher.pairing import Person, make_pairing

    round_ = store.get(Round, round_id)
    if round_ is None:
        return []
    waiting = [
        m for m in (store.get(Member, i) for i in round_.waiting) if m is not None and is_active_on(m, on)
    ]
    groups: list[Group] = []
    if len(waiting) >= 2:
        # This round's groups are history too: nobody is grouped again with the partner they lost.
        history = past_groups(store, before=round_.ordinal + 1)
        wishes = preferences.for_round(store, waiting)
        people = [Person(id=m.id, org=normalise_org(m.org)) for m in waiting]
        pairing = make_pairing(people, history, round_.seed + len(history), never=wishes.never)
        first = max((g.number for g in groups_of_round(store, round_id)), default=0) + 1
        groups = [
            Group(round_id=round_id, number=n, members=list(g.members), host=g.host, rematch=True)
            for n, g in enumerate(pairing.groups, start=first)
        ]
        store.put_many(groups)
    placed = {i for g in groups for i in g.members}
    still = [m.id for m in waiting if m.id not in placed]
    if still != round_.waiting:
        round_.waiting = still
        store.put(round_)
    return groups


def give_up(store: Store, round_id: str) -> list[Member]:
    """The meeting week is over: empty the waiting list and return who was on it (to be told)."""
    round_ = store.get(Round, round_id)
    if round_ is None or not round_.waiting:
        return []
    waited = [m for m in (store.get(Member, i) for i in round_.waiting) if m is not None]
    round_.waiting = []
    store.put(round_)
    return waited
