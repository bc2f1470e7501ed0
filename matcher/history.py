"""The rounds as a table, both ways: exported for the organisers' own analysis, and imported from an
earlier system (a spreadsheet of past pairings) so that the matcher avoids pairs who already met and
the growth chart starts at the real beginning.

One row per group: ``round``, ``date`` (the round's start), ``group``, ``members`` ("; "-separated),
``host``, ``organisations``, ``outcome`` (met, missed, disputed, no reply or open), ``said_met`` and
``said_missed`` (who said so), ``reasons`` (one "member: reason" line each). Members are named by
their member id, or by address when contact details are asked for; only addresses import. An import
needs only ``date``, ``members`` and ``met`` (or ``outcome``): yes/no, met/missed, true/false, 1/0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from mailkit.addresses import canonical_address
from matcher import rounds
from matcher.calendar import ordinal_of, round_id_of
from matcher.members import find_member
from matcher.model import Group, Member, Outcome, Result, Round, RoundState, RoundStep
from matcher.store import Store

COLUMNS = (
    "round",
    "date",
    "group",
    "members",
    "host",
    "organisations",
    "outcome",
    "said_met",
    "said_missed",
    "reasons",
)
IMPORTED = "imported"  # Round.schedule of an imported round
OPEN = "open"
_WORDS = {
    Result.MET: {"met", "yes", "y", "true", "1", "x"},
    Result.MISSED: {"missed", "no", "n", "false", "0", "did not meet", "didn't meet", "not met"},
    Result.NO_REPLY: {"no reply", "no_reply", "", "unknown", "-", "?"},
    Result.DISPUTED: {"disputed"},
}
_LIST = re.compile(r"\s*[;,\n]\s*")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y", "%d.%m.%Y")


# -- export


def outcome_word(group: Group, round_: Round) -> str:
    if round_.state is not RoundState.CLOSED and group.result() in (None, Result.NO_REPLY):
        return OPEN
    return (group.result() or Result.NO_REPLY).value.replace("_", " ")


def group_rows(store: Store, *, contacts: bool = False) -> list[dict[str, Any]]:
    """Every group of every round, oldest round first, as rows with the module's COLUMNS."""
    by_id = {m.id: m for m in store.all(Member)}

    def name(member_id: str) -> str:
        member = by_id.get(member_id)
        return member.address if contacts and member is not None and member.address else member_id

    rows = []
    for round_ in sorted(store.all(Round), key=lambda r: r.ordinal):
        for group in rounds.groups_of_round(store, round_.id):
            said = {r: [name(i) for i in group.members if _said(group, i) is r] for r in _WORDS}
            reasons = [
                f"{name(i)}: {group.outcomes[i].reason}"
                for i in group.members
                if i in group.outcomes and group.outcomes[i].reason
            ]
            orgs = [by_id[i].org if i in by_id else "" for i in group.members]
            rows.append(
                {
                    "round": round_.id,
                    "date": round_.starts_on.isoformat(),
                    "group": group.number,
                    "members": "; ".join(name(i) for i in group.members),
                    "host": name(group.host),
                    "organisations": "; ".join(orgs),
                    "outcome": outcome_word(group, round_),
                    "said_met": "; ".join(said[Result.MET]),
                    "said_missed": "; ".join(said[Result.MISSED]),
                    "reasons": "\n".join(reasons),
                }
            )
    return rows


def _said(group: Group, member_id: str) -> Result | None:
    outcome = group.outcomes.get(member_id)
    return outcome.result if outcome is not None else None


# -- import


@dataclass
class PlannedRound:
    round_id: str
    starts_on: date
    line: int  # the first line that names it
    groups: list[Group] = field(default_factory=list)


@dataclass
class HistoryPlan:
    rounds: list[PlannedRound]
    earlier_joins: dict[str, date]  # member id -> the first round they were in, before their join date

    @property
    def group_count(self) -> int:
        return sum(len(r.groups) for r in self.rounds)


def plan_import(store: Store, rows: Iterable[tuple[int, Mapping[str, str]]]) -> tuple[HistoryPlan, list[str]]:
    """Check every row (line number, cells by column) against the store; the plan, and one problem
    per bad row ("line N: ...") - a plan with problems must not be applied."""
    problems: list[str] = []
    planned: dict[str, PlannedRound] = {}
    seen_in_round: dict[tuple[str, str], int] = {}
    first_round: dict[str, date] = {}
    for line, cells in rows:
        try:
            round_id, starts_on, group = _read_row(store, cells)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        clash = next((m for m in group.members if (round_id, m) in seen_in_round), None)
        if clash is not None:
            problems.append(
                f"line {line}: {_label(store, clash)} is already in a group of round {round_id} "
                f"(line {seen_in_round[(round_id, clash)]})"
            )
            continue
        planned_round = planned.setdefault(round_id, PlannedRound(round_id, starts_on, line))
        if store.get(Round, round_id) is not None:
            if planned_round.line == line:
                problems.append(
                    f"line {line}: round {round_id} is already in the database; nothing to import"
                )
            continue
        planned_round.starts_on = min(planned_round.starts_on, starts_on)
        planned_round.groups.append(group)
        for member_id in group.members:
            seen_in_round[(round_id, member_id)] = line
            first_round[member_id] = min(first_round.get(member_id, starts_on), starts_on)
    ordered = sorted(planned.values(), key=lambda r: r.round_id)
    for planned_round in ordered:
        _number_groups(planned_round)
    earlier = {}
    for member_id, first in first_round.items():
        member = store.get(Member, member_id)
        if member is not None and (member.joined_at is None or member.joined_at.date() > first):
            earlier[member_id] = first
    return HistoryPlan(ordered, earlier), problems


def apply_import(store: Store, plan: HistoryPlan) -> None:
    """Record the planned rounds, closed, with every step done (so nothing is sent about them), and
    move members' join dates back to the first round they were in. One transaction."""
    with store.transaction():
        for index, planned in enumerate(plan.rounds):
            following = plan.rounds[index + 1].starts_on if index + 1 < len(plan.rounds) else None
            closed_on = following or planned.starts_on + timedelta(days=28)
            closed_at = datetime.combine(closed_on, time(0), tzinfo=UTC)
            year, month = planned.starts_on.year, planned.starts_on.month
            store.put(
                Round(
                    id=planned.round_id,
                    ordinal=ordinal_of(year, month),
                    starts_on=planned.starts_on,
                    meeting_week_start=planned.starts_on,
                    meeting_week_end=planned.starts_on + timedelta(days=6),
                    followup_on=planned.starts_on + timedelta(days=7),
                    seed=0,
                    state=RoundState.CLOSED,
                    created_at=datetime.combine(planned.starts_on, time(0), tzinfo=UTC),
                    closed_at=closed_at,
                    steps_done=list(RoundStep),
                    schedule=IMPORTED,
                )
            )
            for group in planned.groups:
                for outcome in group.outcomes.values():
                    outcome.at = closed_at
            store.put_many(planned.groups)
        for member_id, first in plan.earlier_joins.items():
            member = store.get(Member, member_id)
            if member is not None:
                store.put(replace(member, joined_at=datetime.combine(first, time(0), tzinfo=UTC)))


def _read_row(store: Store, cells: Mapping[str, str]) -> tuple[str, date, Group]:
    starts_on = parse_date(cells.get("date") or "")
    round_id = round_id_of(starts_on.year, starts_on.month)
    given_round = (cells.get("round") or "").strip()
    if given_round and given_round != round_id:
        raise ValueError(f"round {given_round!r} is not the month of date {starts_on.isoformat()}")
    names = [n for n in _LIST.split(cells.get("members") or "") if n]
    if len(names) < 2:
        raise ValueError("a group needs at least two members")
    ids = [_member_id(store, n) for n in names]
    if len(set(ids)) != len(ids):
        raise ValueError("a member is named twice in the group")
    by_name = dict(zip(names, ids, strict=True))
    host_name = (cells.get("host") or "").strip()
    host = _member_in(host_name, by_name, store, "host") if host_name else ids[0]
    outcomes = _outcomes(cells, ids, by_name, store)
    number = int(cells["group"]) if (cells.get("group") or "").strip().isdigit() else 0
    return round_id, starts_on, Group(round_id, number, members=ids, host=host, outcomes=outcomes)


def parse_date(text: str) -> date:
    """A spreadsheet's date, with or without a time: 2024-03-04, 04/03/2024 (day first), 4.3.2024."""
    text = text.strip()
    for candidate in (text, text.split(" ")[0], text.split("T")[0]):
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(candidate, fmt).date()
            except ValueError:
                continue
    raise ValueError(f"not a date (expected e.g. 2024-03-04 or 04/03/2024): {text[:40]!r}")


def _member_id(store: Store, name: str) -> str:
    member = find_member(store, canonical_address(name)) if "@" in name else None
    if member is None or member.erased:
        raise ValueError(f"no member with address {name[:80]!r} (import the members first)")
    return member.id


def _member_in(name: str, by_name: Mapping[str, str], store: Store, what: str) -> str:
    if name in by_name:
        return by_name[name]
    found = _member_id(store, name)
    if found not in by_name.values():
        raise ValueError(f"{what} {name[:80]!r} is not a member of the group")
    return found


def _outcomes(cells: Mapping[str, str], ids: list[str], by_name: Mapping[str, str], store: Store):
    said_met = [
        _member_in(n, by_name, store, "said_met") for n in _LIST.split(cells.get("said_met") or "") if n
    ]
    said_missed = [
        _member_in(n, by_name, store, "said_missed") for n in _LIST.split(cells.get("said_missed") or "") if n
    ]
    word = (cells.get("outcome") if cells.get("outcome") is not None else cells.get("met")) or ""
    if word.strip().lower() == OPEN:
        raise ValueError("the round is still open; import finished rounds only")
    result = next((r for r, words in _WORDS.items() if word.strip().lower() in words), None)
    if result is None:
        raise ValueError(f"outcome {word[:40]!r} is not one of met, missed, no reply, disputed (or yes/no)")
    if not (said_met or said_missed):
        if result is Result.DISPUTED:
            raise ValueError("a disputed group needs said_met and said_missed")
        said_met = ids if result is Result.MET else []
        said_missed = ids if result is Result.MISSED else []
    outcomes = {i: Outcome(Result.NO_REPLY) for i in ids}
    outcomes.update({i: Outcome(Result.MET) for i in said_met})
    outcomes.update({i: Outcome(Result.MISSED) for i in said_missed})
    for line in (cells.get("reasons") or "").splitlines():
        who, colon, reason = line.partition(":")
        member_id = by_name.get(who.strip()) if colon else None
        if member_id is None:  # free text: the reason of whoever missed first
            member_id, reason = next((i for i in ids if outcomes[i].result is Result.MISSED), ids[0]), line
        outcomes[member_id].reason = rounds.clean_reason(reason)
    return outcomes


def _number_groups(planned: PlannedRound) -> None:
    taken = {g.number for g in planned.groups if g.number}
    if len(taken) != sum(1 for g in planned.groups if g.number):
        taken = set()
        for group in planned.groups:
            group.number = 0
    next_number = 1
    for group in planned.groups:
        if group.number:
            continue
        while next_number in taken:
            next_number += 1
        group.number = next_number
        taken.add(next_number)


def _label(store: Store, member_id: str) -> str:
    member = store.get(Member, member_id)
    return member.address if member is not None and member.address else member_id
