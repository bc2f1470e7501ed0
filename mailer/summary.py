"""The organisers' summary of a closed round: figures, tables, reasons by theme, who needs attention
and the pictures (mailer/insight.py works out what goes beyond the round's own counts)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from mailer.charts import (
    Edge,
    MonthPoint,
    Node,
    RoundPoint,
    growth_chart_png,
    met_network_png,
    organisation_colours,
    round_network_png,
)
from mailer.insight import (
    ATTENTION_SHOWN,
    grouped_by_theme,
    is_member_now,
    joined_and_left,
    missed_reasons,
    needs_attention,
    reason_rows,
    since_last_summary,
)
from mailer.settings import MailSettings
from matcher import rounds
from matcher.calendar import parse_round_id
from matcher.model import Group, Member, MemberStatus, Notice, Result, Round, UnreadMessage
from matcher.store import Store

ROUNDS_SHOWN = 12
# "What members wrote": each message cut to a few wrapped lines, and at most this many messages.
WROTE_SHOWN = 40
WROTE_LINES = 6
WROTE_WIDTH = 70


@dataclass(frozen=True)
class RoundRow:
    id: str
    results: rounds.Results
    schedule: str  # the schedule the round ran under (a change is marked on the growth chart)

    @property
    def met_rate(self) -> str:
        r = self.results
        return f"{100 * r.met / r.groups:.0f}%" if r.groups else "-"


def build_summary(
    store: Store,
    round_id: str,
    mail: MailSettings,
    *,
    now: datetime | None = None,
    schedule: str = "",
    ghost_rounds: int = 3,
) -> Notice:
    """The summary notice for ``round_id`` (to the organisers), with its PNG pictures.

    ``now``: the end of the period for a round still open (a closed round's period ends when it
    closed); ``schedule``: the programme's schedule in words (matcher/calendar.py)."""
    members = store.all(Member)
    by_id = {m.id: m for m in members}
    all_rounds = sorted(store.all(Round), key=lambda r: r.ordinal)
    this = next(r for r in all_rounds if r.id == round_id)
    upto = [r for r in all_rounds if r.ordinal <= this.ordinal]
    rows = [_round_row(store, r) for r in upto]
    groups = rounds.groups_of_round(store, round_id)
    year, month = parse_round_id(round_id)
    growth = growth_points(members, until=(year, month))
    report = rounds.close_report(store, round_id)
    since = since_last_summary(all_rounds, this)
    until = this.closed_at or now or datetime.max.replace(tzinfo=UTC)
    joined, left = joined_and_left(members, since, until)
    status = Counter(m.status for m in members if not m.erased)
    row = rows[-1]
    period = f"since {since.date().isoformat()}" if since else "so far"
    figures = [
        ("Members (active and paused)", sum(1 for m in members if is_member_now(m))),
        ("Active", status[MemberStatus.ACTIVE]),
        ("Paused", status[MemberStatus.PAUSED]),
        (f"Joined {period}", len(joined)),
        (f"Left {period}", len(left)),
        ("Awaiting confirmation", status[MemberStatus.PENDING]),
        ("Groups formed", row.results.groups),
        ("People paired", row.results.people),
        ("Met", row.results.met),
        ("Missed", row.results.missed),
        ("No reply", row.results.no_reply),
        ("Disputed", row.results.disputed),
        ("Rematches within the round", row.results.rematch_line),
        ("Met rate", row.met_rate),
        ("Conversations held so far", sum(r.results.met for r in rows)),
        ("Ghosts paused", len(report.ghosts)),
        ("Disabled by bounces", status[MemberStatus.DISABLED]),
    ]
    reasons = missed_reasons(groups)
    wrote = _wrote(store, all_rounds, this)
    closed_groups = [g for r in upto if r.closed_at is not None for g in rounds.groups_of_round(store, r.id)]
    attention = needs_attention(members, closed_groups, ghost_rounds=ghost_rounds)
    title = f"{mail.programme_name}, round {round_id}"
    nodes = _nodes(by_id, {mid for g in groups for mid in g.members})
    met_pairs = met_pair_counts(store, [r.id for r in upto])
    # Everyone who is a member now is shown in "who has met whom", also those who have met nobody.
    met_nodes = _nodes(
        by_id, {mid for pair in met_pairs for mid in pair} | {m.id for m in members if is_member_now(m)}
    )
    pictures = SummaryPictures(
        programme=mail.programme_name,
        title=title,
        seed=this.seed,
        growth=growth,
        rounds=[RoundPoint(r.id, r.results.groups, r.results.met, r.schedule) for r in rows],
        nodes=nodes,
        edges=round_edges(groups),
        met_nodes=met_nodes,
        met_edges=[(a, b, n) for (a, b), n in sorted(met_pairs.items())],
        org_colours=organisation_colours(m.org for m in members if is_member_now(m)),
    )
    return Notice(
        kind="summary",
        to=list(mail.organisers),
        values={
            "round_id": round_id,
            "figures": figures,
            "schedule": schedule,
            "rounds": [
                {
                    "id": row.id,
                    "met_rate": row.met_rate,
                    **dataclasses.asdict(row.results),
                }
                for row in rows[-ROUNDS_SHOWN:]
            ],
            "reasons": [r.reason for r in reasons],
            "themes": [
                {"theme": t.name, "count": t.count, "examples": list(t.examples)}
                for t in grouped_by_theme(reasons)
            ],
            "reason_rows": reason_rows(reasons),
            "disputed": [_dispute(group, by_id) for group in groups if group.result() is Result.DISPUTED],
            "wrote": wrote[:WROTE_SHOWN],
            "wrote_more": max(0, len(wrote) - WROTE_SHOWN),
            "attention": [{"who": a.who, "why": a.why, "done": a.done} for a in attention[:ATTENTION_SHOWN]],
            "attention_more": max(0, len(attention) - ATTENTION_SHOWN),
            "ghosts": [m.display_name for m in report.ghosts],
            "disabled": [m.address for m in members if m.status is MemberStatus.DISABLED],
            "images": list(SummaryPictures.NAMES),
            "pictures": pictures,
            "growth": [
                {"month": p.month, "members": p.members, "joins": p.joins, "leaves": p.leaves}
                for p in growth[-ROUNDS_SHOWN:]
            ],
        },
        key=f"summary:{round_id}",
        round_id=round_id,
    )


@dataclass(frozen=True)
class SummaryPictures:
    """What the summary's three pictures show; the mailer draws them when it builds the email
    (mailer/headers.py ``Pictures``)."""

    NAMES = ("growth", "network", "met_network")

    programme: str
    title: str
    seed: int
    growth: list[MonthPoint]
    rounds: list[RoundPoint]
    nodes: list[Node]
    edges: list[Edge]
    met_nodes: list[Node]
    met_edges: list[tuple[str, str, int]]
    org_colours: dict[str, str]  # one colour per organisation in every picture of the email

    def draw(self) -> dict[str, bytes]:
        return {
            "growth": growth_chart_png(
                self.growth, title=f"{self.programme}: members and conversations", rounds=self.rounds
            ),
            "network": round_network_png(
                self.nodes, self.edges, title=self.title, seed=self.seed, org_colours=self.org_colours
            ),
            "met_network": met_network_png(
                self.met_nodes,
                self.met_edges,
                title=f"{self.programme}: who has met whom so far",
                seed=self.seed,
                org_colours=self.org_colours,
            ),
        }


def gallery(store: Store, mail: MailSettings) -> dict[str, bytes]:
    """One diagram per round of the whole history ("round-2026-01.png" -> PNG), every organisation
    in the same colour throughout, for a blog post."""
    members = store.all(Member)
    by_id = {m.id: m for m in members}
    colours = organisation_colours(m.org for m in members if not m.erased)
    pictures = {}
    for round_ in sorted(store.all(Round), key=lambda r: r.ordinal):
        groups = rounds.groups_of_round(store, round_.id)
        nodes = _nodes(by_id, {mid for g in groups for mid in g.members})
        title = f"{mail.programme_name}, round {round_.id}"
        pictures[f"round-{round_.id}.png"] = round_network_png(
            nodes, round_edges(groups), title=title, seed=round_.seed, org_colours=colours
        )
    return pictures


def growth_points(members: list[Member], *, until: tuple[int, int]) -> list[MonthPoint]:
    """Members at each month's end, and joins and leaves in the month, from the first join to ``until``.

    Leaving includes being disabled (when: ``left_at``, else the month of ``until``), so the last
    point counts the members the summary's text counts."""
    joined = [m.joined_at for m in members if m.joined_at]
    if not joined:
        return []
    first = min(joined)
    joins = Counter(_month(m.joined_at) for m in members if m.joined_at)
    last = f"{until[0]:04d}-{until[1]:02d}"
    leaves = Counter(
        _month(m.left_at) if m.left_at else last
        for m in members
        if m.joined_at and (m.left_at or m.status is MemberStatus.DISABLED)
    )
    points = []
    year, month = first.year, first.month
    total = 0
    while (year, month) <= until:
        key = f"{year:04d}-{month:02d}"
        total += joins[key] - leaves[key]
        points.append(MonthPoint(month=key, members=total, joins=joins[key], leaves=leaves[key]))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return points


def round_edges(groups: list[Group]) -> list[Edge]:
    """One line per pairing in the round (a triple gives three), coloured by the group's result."""
    edges = []
    for group in groups:
        result = (group.result() or Result.NO_REPLY).value
        for i, a in enumerate(group.members):
            for b in group.members[i + 1 :]:
                edges.append(Edge(a, b, result))
    return edges


def met_pair_counts(store: Store, round_ids: list[str]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for round_id in round_ids:
        for group in rounds.groups_of_round(store, round_id):
            if group.met:
                for i, a in enumerate(group.members):
                    for b in group.members[i + 1 :]:
                        counts[tuple(sorted((a, b)))] += 1
    return counts


def _round_row(store: Store, round_: Round) -> RoundRow:
    return RoundRow(round_.id, rounds.results_of(rounds.groups_of_round(store, round_.id)), round_.schedule)


def _dispute(group: Group, by_id: dict[str, Member]) -> str:
    """Who said what in a disputed group: "Ann Lee: met; Bob Ray: missed (never heard back)"."""
    said = []
    for member_id in group.members:
        outcome = group.outcomes.get(member_id)
        if outcome is None or outcome.result is Result.NO_REPLY:
            continue
        member = by_id.get(member_id)
        name = member.display_name if member is not None and not member.erased else "a former member"
        said.append(f"{name}: {outcome.result.value}" + (f" ({outcome.reason})" if outcome.reason else ""))
    return f"group {group.number}: " + "; ".join(said)


def _wrote(store: Store, all_rounds: list[Round], this: Round) -> list[dict[str, Any]]:
    """Messages we could not read that arrived after the previous round closed and before this one
    did (a round still open: until now), oldest first, each cut to a few lines."""
    earlier = [r.closed_at for r in all_rounds if r.ordinal < this.ordinal and r.closed_at is not None]
    since = max(earlier, default=None)
    kept = sorted(
        (
            u
            for u in store.all(UnreadMessage)
            if (since is None or u.at > since) and (this.closed_at is None or u.at <= this.closed_at)
        ),
        key=lambda u: u.at,
    )
    return [{"name": u.name, "address": u.sender, "at": u.at, "text": _cut(u.text)} for u in kept]


def _cut(text: str) -> str:
    lines = [part for line in text.splitlines() for part in (textwrap.wrap(line, WROTE_WIDTH) or [""])]
    if len(lines) > WROTE_LINES:
        lines = [*lines[:WROTE_LINES], "..."]
    return "\n".join(lines)


def _nodes(by_id: dict[str, Member], ids: set[str]) -> list[Node]:
    nodes = []
    for member_id in sorted(ids):
        member = by_id.get(member_id)
        if member is None or member.erased:
            nodes.append(Node(member_id, "", ""))
        else:
            first = member.display_name.split()[0] if member.name else ""
            nodes.append(Node(member_id, first, member.org, full_name=member.display_name))
    return nodes


def _month(when: datetime | date) -> str:
    return f"{when.year:04d}-{when.month:02d}"
