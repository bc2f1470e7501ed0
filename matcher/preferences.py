"""People's wishes about their partners: meeting a group again, and never being grouped with someone.

Both are kept on the asking member's record only (``Member.meet_again``, ``Member.never_with``), so
nothing about them reaches the other person: the pairing reads them as constraints (matcher/pairing.py)
and the organisers see them only in ``members show``.

A group meets again when every one of its members asked, once: the request is used up in the round
that forms the group again. "Never" lasts until the member takes it back. Plain functions on the
store; the caller holds the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from matcher.model import Group, Member
from matcher.store import Store


@dataclass(frozen=True)
class Wishes:
    """What a round's pairing must honour among its eligible members."""

    never: list[tuple[str, str]]
    again: list[tuple[str, ...]]  # member ids of each group all of whose members asked


def ask_meet_again(store: Store, member: Member, group: Group) -> Member:
    if group.key in member.meet_again:
        return member
    updated = replace(member, meet_again=[*member.meet_again, group.key])
    store.put(updated)
    return updated


def cancel_meet_again(store: Store, member: Member, group: Group | None) -> Member:
    """Takes back the request about ``group``, or every request for None."""
    kept = [] if group is None else [key for key in member.meet_again if key != group.key]
    updated = replace(member, meet_again=kept)
    store.put(updated)
    return updated


def add_never(store: Store, member: Member, entry: str) -> Member:
    """``entry``: a member id, or the canonical address of someone who is not a member."""
    if entry in member.never_with or entry in (member.id, member.address):
        return member
    updated = replace(member, never_with=[*member.never_with, entry])
    store.put(updated)
    return updated


def remove_never(store: Store, member: Member, entry: str) -> Member:
    updated = replace(member, never_with=[e for e in member.never_with if e != entry])
    store.put(updated)
    return updated


def partners(store: Store, member: Member) -> list[Member]:
    """Everyone the member has been grouped with (still stored and not erased), by id."""
    ids = {i for group in store.find(Group, "member", member.id) for i in group.members if i != member.id}
    found = (store.get(Member, i) for i in sorted(ids))
    return [m for m in found if m is not None and not m.erased]


def named(people: Iterable[Member], name: str) -> list[Member]:
    """The people ``name`` may mean: the whole name, else every word of it starting a word of
    theirs in order ("Sam" and "Sam O" both mean Sam O'Neill)."""
    wanted = name.casefold().split()
    if not wanted:
        return []
    people = list(people)
    whole = [m for m in people if m.name.casefold().split() == wanted]
    if whole:
        return whole
    return [m for m in people if _starts_words(m.name.casefold().split(), wanted)]


def never_entries(store: Store, member: Member) -> list[tuple[str, str]]:
    """(entry, how to show it to this member or the organisers): a name, else the address."""
    shown = []
    for entry in member.never_with:
        other = store.get(Member, entry)
        if other is None:
            shown.append((entry, entry))
        elif not other.erased:
            shown.append((entry, other.name or other.address))
    return shown


def for_round(store: Store, eligible: Sequence[Member]) -> Wishes:
    """The never pairs and meet-again groups among the members eligible for a round."""
    ids = {m.id for m in eligible}
    by_address = {m.address: m.id for m in eligible if m.address}
    never = []
    for member in eligible:
        for entry in member.never_with:
            other = entry if entry in ids else by_address.get(entry)
            if other is not None:
                never.append((member.id, other))
    again = []
    asked = {m.id: set(m.meet_again) for m in eligible}
    for key in sorted({key for m in eligible for key in m.meet_again}):
        group = store.get(Group, key)
        if group is not None and all(key in asked.get(i, ()) for i in group.members):
            again.append(tuple(group.members))
    return Wishes(never=never, again=again)


def used_up(store: Store, wishes: Wishes, formed: Iterable[Sequence[str]]) -> None:
    """Each meet-again request honoured by a group formed this round is used up."""
    formed_sets = [set(group) for group in formed]
    for wanted in wishes.again:
        if not any(set(wanted) <= group for group in formed_sets):
            continue
        for member_id in wanted:
            member = store.get(Member, member_id)
            if member is None:
                continue
            keys = {g.key for g in store.find(Group, "member", member_id) if set(g.members) == set(wanted)}
            store.put(replace(member, meet_again=[k for k in member.meet_again if k not in keys]))


def _starts_words(words: list[str], wanted: list[str]) -> bool:
    position = 0
    for part in wanted:
        while position < len(words) and not words[position].startswith(part):
            position += 1
        if position == len(words):
            return False
        position += 1
    return True
