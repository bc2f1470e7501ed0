"""The organisers' summary of a closed round: figures, tables, reasons and the two pictures."""

from __future__ import annotations

import dataclasses
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mailer.charts import Edge, MonthPoint, Node, growth_chart_png, met_network_png, round_network_png
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

    @property
    def met_rate(self) -> str:
        r = self.results
        return f"{100 * r.met / r.groups:.0f}%" if r.groups else "-"


def build_summary(store: Store, round_id: str, mail: MailSettings) -> Notice:
    """The summary notice for ``round_id`` (to the organisers), with its PNG pictures."""
    members = store.all(Member)
    by_id = {m.id: m for m in members}
    all_rounds = sorted(store.all(Round), key=lambda r: r.ordinal)
    this = next(r for r in all_rounds if r.id == round_id)
    shown = [r for r in all_rounds if r.ordinal <= this.ordinal][-ROUNDS_SHOWN:]
    rows = [_round_row(store, r.id) for r in shown]
    groups = rounds.groups_of_round(store, round_id)
    year, month = parse_round_id(round_id)
    growth = growth_points(members, until=(year, month))
    report = rounds.close_report(store, round_id)
    joins, leaves = (growth[-1].joins, growth[-1].leaves) if growth else (0, 0)
    status = Counter(m.status for m in members if not m.erased)
    row = rows[-1]
    figures = [
        ("Members (active and paused)", status[MemberStatus.ACTIVE] + status[MemberStatus.PAUSED]),
        ("Active", status[MemberStatus.ACTIVE]),
        ("Paused", status[MemberStatus.PAUSED]),
        ("Joined this month", joins),
        ("Left this month", leaves),
        ("Awaiting confirmation", status[MemberStatus.PENDING]),
        ("Groups formed", row.results.groups),
        ("People paired", row.results.people),
        ("Met", row.results.met),
        ("Missed", row.results.missed),
        ("No reply", row.results.no_reply),
        ("Disputed", row.results.disputed),
        ("Met rate", row.met_rate),
        ("Ghosts paused", len(report.ghosts)),
        ("Disabled by bounces", status[MemberStatus.DISABLED]),
    ]
    # A disputed group's "missed" reason is shown with the dispute, not as a missed conversation's.
    reasons = [
        outcome.reason
        for group in groups
        if group.result() is Result.MISSED
        for outcome in group.outcomes.values()
        if outcome.result is Result.MISSED and outcome.reason
    ]
    wrote = _wrote(store, all_rounds, this)
    title = f"{mail.programme_name}, round {round_id}"
    nodes = _nodes(by_id, {mid for g in groups for mid in g.members})
    met_pairs = met_pair_counts(store, [r.id for r in all_rounds if r.ordinal <= this.ordinal])
    met_nodes = _nodes(by_id, {mid for pair in met_pairs for mid in pair})
    pictures = SummaryPictures(
        programme=mail.programme_name,
        title=title,
        seed=this.seed,
        growth=growth,
        nodes=nodes,
        edges=round_edges(groups),
        met_nodes=met_nodes,
        met_edges=[(a, b, n) for (a, b), n in sorted(met_pairs.items())],
    )
    return Notice(
        kind="summary",
        to=list(mail.organisers),
        values={
            "round_id": round_id,
            "figures": figures,
            "rounds": [
                {
                    "id": row.id,
                    "met_rate": row.met_rate,
                    **dataclasses.asdict(row.results),
                }
                for row in rows
            ],
            "reasons": reasons,
            "disputed": [_dispute(group, by_id) for group in groups if group.result() is Result.DISPUTED],
            "wrote": wrote[:WROTE_SHOWN],
            "wrote_more": max(0, len(wrote) - WROTE_SHOWN),
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
    nodes: list[Node]
    edges: list[Edge]
    met_nodes: list[Node]
    met_edges: list[tuple[str, str, int]]

    def draw(self) -> dict[str, bytes]:
        return {
            "growth": growth_chart_png(self.growth, title=f"{self.programme}: members over time"),
            "network": round_network_png(self.nodes, self.edges, title=self.title, seed=self.seed),
            "met_network": met_network_png(
                self.met_nodes,
                self.met_edges,
                title=f"{self.programme}: who has met whom so far",
                seed=self.seed,
            ),
        }


def growth_points(members: list[Member], *, until: tuple[int, int]) -> list[MonthPoint]:
    """Members at each month's end, and joins and leaves in the month, from the first join to ``until``."""
    joined = [m.joined_at for m in members if m.joined_at]
    if not joined:
        return []
    first = min(joined)
    joins = Counter(_month(m.joined_at) for m in members if m.joined_at)
    leaves = Counter(_month(m.left_at) for m in members if m.left_at and m.joined_at)
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


def _round_row(store: Store, round_id: str) -> RoundRow:
    return RoundRow(round_id, rounds.results_of(rounds.groups_of_round(store, round_id)))


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
            nodes.append(Node(member_id, member.display_name.split()[0] if member.name else "", member.org))
    return nodes


def _month(when: datetime | date) -> str:
    return f"{when.year:04d}-{when.month:02d}"
