"""Pictures for the organiser summary: a growth chart and two network diagrams, as PNG bytes.

Pure functions: data in, PNG bytes out, no store and no clock. Rendering goes through
matplotlib's object-oriented API straight onto an Agg canvas, so neither pyplot's global figure
registry nor the process-wide backend choice is touched (the daemon may render from any thread,
and other code in the process may use matplotlib differently).

Each picture is built in two steps: a pure "plan" (positions, colours, legend entries; tested
directly) and a renderer that only draws the plan. Layouts are computed here rather than by a
force-directed layout of the whole graph: a round's groups are disjoint pairs and triples, which a
force layout scatters at random, and the cumulative "who has met whom" graph is close to a random
graph, which a force layout turns into a hairball (and networkx's spring layout on 2,000 nodes
without scipy costs seconds). Instead groups sit on a grid ordered by outcome, and people are
placed in clusters by organisation (or on a circle with names for small programmes).
"""

from __future__ import annotations

import io
import math
import random
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.path import Path
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image

MET = "met"
DISPUTED = "disputed"  # one member said met, another missed
MISSED = "missed"
NO_REPLY = "no_reply"
OUTCOMES = (MET, DISPUTED, MISSED, NO_REPLY)
# The seeds' convention: the pairs that did not meet are red, solid when they said so and dashed
# when nobody confirmed either way; a disputed pair (one said met, one missed) is amber.
OUTCOME_COLOURS = {MET: "#2ca02c", DISPUTED: "#e69f00", MISSED: "#d62728", NO_REPLY: "#d62728"}
OUTCOME_STYLES = {MET: "solid", DISPUTED: "solid", MISSED: "solid", NO_REPLY: (0, (2.5, 1.6))}
OUTCOME_NAMES = {MET: "met", DISPUTED: "disputed", MISSED: "did not meet", NO_REPLY: "did not confirm"}
RED_OUTCOMES = frozenset({MISSED, NO_REPLY})

# Organisation colours avoid green, red and mid grey so people never read as outcomes.
ORG_PALETTE = (
    "#1f77b4",  # blue
    "#ff7f0e",  # orange
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#bcbd22",  # olive
    "#17becf",  # cyan
    "#393b79",  # navy
    "#e7ba52",  # gold
    "#a55194",  # plum
)
OTHER_COLOUR = "#b4b4b4"
MET_EDGE_COLOUR = "#34495e"

# Above this many people, names overlap whatever the layout: a round's diagram names only the people
# in red pairs, and "who has met whom" becomes an organisation x organisation matrix.
LABEL_LIMIT = 60
MAX_LABEL_CHARS = 12
MAX_LEGEND_CHARS = 26
DPI = 100
# Network diagram area (figure fractions: left, bottom, width, height); legends sit to its right.
_AXES_RECT = (0.02, 0.03, 0.70, 0.85)

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


# --------------------------------------------------------------------------- input types


@dataclass(frozen=True)
class MonthPoint:
    month: str  # "2026-01"
    members: int  # active + paused members at month end
    joins: int
    leaves: int


@dataclass(frozen=True)
class Node:
    id: str
    label: str  # short display name; "" for erased people
    org: str
    full_name: str = ""  # where a list names people (who has not met anyone yet); "" = label


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    outcome: str  # "met" | "disputed" | "missed" | "no_reply"


@dataclass(frozen=True)
class RoundPoint:
    """A round on the growth chart: conversations held, the met rate, and the schedule it ran under."""

    month: str  # the round's id, "2026-01"
    groups: int
    met: int
    schedule: str  # a change from the round before is marked on the chart


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class LegendEntry:
    label: str
    colour: str
    line_width: float = 0.0  # 0 for a marker entry (a person), > 0 for a line entry
    line_style: object = "solid"


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the network renderer draws; one entry per node and per drawn edge."""

    node_ids: tuple[str, ...]
    positions: tuple[tuple[float, float], ...]
    node_colours: tuple[str, ...]
    labels: tuple[str, ...]  # "" where no label is drawn
    label_directions: tuple[tuple[float, float], ...]  # unit vector: where the label goes
    segments: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    edge_colours: tuple[str, ...]
    edge_widths: tuple[float, ...]
    edge_styles: tuple[object, ...]  # matplotlib line styles, one per segment
    edge_alpha: float
    edge_bend: float  # 0: straight lines; > 0: curves pulled this far toward the origin
    edge_legend_title: str
    edge_legend: tuple[LegendEntry, ...]
    org_legend: tuple[LegendEntry, ...]
    marker_size: float  # matplotlib scatter size (points squared)
    figsize: tuple[float, float]
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1 that must stay visible
    top_align: bool  # True: spare height goes below the drawing, not around it
    subtitle: str
    empty_message: str  # drawn instead of the diagram when there is nothing to show


@dataclass(frozen=True)
class GrowthPlan:
    x: tuple[int, ...]  # months since the first month, so gaps in the data stay visible
    months: tuple[str, ...]
    members: tuple[int, ...]
    joins: tuple[int, ...]
    leaves: tuple[int, ...]  # negative: drawn below the axis
    ticks: tuple[tuple[int, str], ...]
    round_x: tuple[int, ...] = ()  # the rounds, on the same month scale
    conversations: tuple[int, ...] = ()  # groups that met
    met_rates: tuple[float, ...] = ()  # percent of groups that met
    changes: tuple[tuple[int, str], ...] = ()  # (x, new schedule) where the schedule changed


@dataclass(frozen=True)
class MixingPlan:
    """Conversations between organisations: counts[i][j] pairs who met across orgs[i] and orgs[j]."""

    orgs: tuple[str, ...]
    colours: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    across_share: float  # of all conversations, the share between different organisations
    never_met: tuple[str, ...]  # labels of members who have not met anyone yet
    never_met_count: int
    subtitle: str


# --------------------------------------------------------------------------- public API


def growth_chart_png(points: Sequence[MonthPoint], *, title: str, rounds: Sequence[RoundPoint] = ()) -> bytes:
    """Members over time (line) above joins and leaves per month (bars) and, given the rounds,
    conversations held and the met rate per round, with a mark where the schedule changed."""
    return _render_growth(plan_growth(points, rounds), title)


def round_network_png(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    title: str,
    seed: int = 0,
    org_colours: Mapping[str, str] | None = None,
) -> bytes:
    """This round's groups as lines coloured by outcome; people coloured by organisation."""
    return _render_network(plan_round_network(nodes, edges, seed=seed, org_colours=org_colours), title)


def met_network_png(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str, int]],
    *,
    title: str,
    seed: int = 0,
    org_colours: Mapping[str, str] | None = None,
) -> bytes:
    """Everyone who has met whom so far; edges are (a, b, times_met). ``nodes`` may include people
    who have met nobody: they are shown. Above LABEL_LIMIT people: the organisation mixing matrix."""
    people = _people(nodes, ((a, b) for a, b, _ in edges))
    if len(people) > LABEL_LIMIT:
        return _render_mixing(plan_mixing(nodes, edges, org_colours=org_colours), title)
    return _render_network(plan_met_network(nodes, edges, seed=seed, org_colours=org_colours), title)


def organisation_colours(orgs: Iterable[str]) -> dict[str, str]:
    """One colour per organisation for every chart in an email: the largest (by how often it is
    given) get the palette, the rest grey. Pass every member's organisation."""
    sizes = Counter(org.strip() for org in orgs if org.strip())
    ranked = sorted(sizes, key=lambda org: (-sizes[org], org.casefold(), org))
    return {org: ORG_PALETTE[i] for i, org in enumerate(ranked[: len(ORG_PALETTE)])}


# --------------------------------------------------------------------------- growth plan


def month_index(month: str) -> int:
    """Months since year 0 for a "YYYY-MM" string; ValueError for anything else."""
    found = _MONTH_RE.match(month) if isinstance(month, str) else None
    if found is None:
        raise ValueError(f"month must look like 2026-01, got {month!r}")
    return int(found.group(1)) * 12 + int(found.group(2)) - 1


def month_ticks(first: int, span: int, max_ticks: int = 12) -> tuple[tuple[int, str], ...]:
    """Tick positions (relative to `first`) and labels for `span` months starting at `first`.

    The step grows (1, 2, 3, 6, 12, 24... months) until at most `max_ticks` labels remain, and
    ticks sit on calendar boundaries (Jan/Apr/Jul/Oct for a step of 3) so they read naturally.
    The year is shown on the first tick and at each January.
    """
    if span <= 0:
        return ()
    step = next(
        (s for s in (1, 2, 3, 6) if math.ceil(span / s) <= max_ticks),
        12 * max(1, math.ceil(span / 12 / max_ticks)),
    )
    ticks: list[tuple[int, str]] = []
    for index in range(first, first + span):
        year, month0 = divmod(index, 12)
        if step < 12:
            if month0 % step:
                continue
            label = _MONTH_NAMES[month0]
            if not ticks or month0 == 0:
                label += f"\n{year}"
        else:
            if month0 or year % (step // 12):
                continue
            label = str(year)
        ticks.append((index - first, label))
    if not ticks:  # a short range between calendar boundaries: label its first month
        year, month0 = divmod(first, 12)
        ticks.append((0, f"{_MONTH_NAMES[month0]}\n{year}"))
    return tuple(ticks)


def plan_growth(points: Sequence[MonthPoint], rounds: Sequence[RoundPoint] = ()) -> GrowthPlan:
    """Validate and order the month points; ValueError names the offending month."""
    seen: dict[int, MonthPoint] = {}
    for point in points:
        index = month_index(point.month)
        if index in seen:
            raise ValueError(f"month {point.month} appears more than once")
        for field in ("members", "joins", "leaves"):
            value = getattr(point, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field} for {point.month} must be a whole number >= 0, got {value!r}")
        seen[index] = point
    if not seen:
        return GrowthPlan((), (), (), (), (), ())
    order = sorted(seen)
    first = order[0]
    ordered = [seen[i] for i in order]
    held = sorted((r for r in rounds if first <= month_index(r.month) <= order[-1]), key=lambda r: r.month)
    changes = tuple(
        (month_index(r.month) - first, r.schedule)
        for before, r in zip(held, held[1:], strict=False)
        # "" is a round from before schedules were kept: unknown, not a change.
        if r.schedule != before.schedule and before.schedule and r.schedule
    )
    return GrowthPlan(
        x=tuple(i - first for i in order),
        months=tuple(p.month for p in ordered),
        members=tuple(p.members for p in ordered),
        joins=tuple(p.joins for p in ordered),
        leaves=tuple(-p.leaves for p in ordered),
        ticks=month_ticks(first, order[-1] - first + 1),
        round_x=tuple(month_index(r.month) - first for r in held),
        conversations=tuple(r.met for r in held),
        met_rates=tuple(100.0 * r.met / r.groups if r.groups else 0.0 for r in held),
        changes=changes,
    )


# --------------------------------------------------------------------------- network plans


def plan_round_network(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    seed: int = 0,
    org_colours: Mapping[str, str] | None = None,
) -> NetworkPlan:
    """Groups laid out on a grid, fully met groups first, then disputed, missed, then no reply.

    Ordering by outcome turns the grid into a waffle chart: the share of green, red and grey
    reads at a glance even with 1,000 groups. The seed shuffles groups within an outcome.
    Edges naming people absent from `nodes` still draw (the person shows as an unnamed dot);
    self-loops are dropped; an unknown outcome is a ValueError.
    """
    for edge in edges:
        if edge.outcome not in OUTCOME_COLOURS:
            raise ValueError(
                f"edge {edge.a}-{edge.b} has outcome {edge.outcome!r}; expected one of {', '.join(OUTCOMES)}"
            )
    drawn = [e for e in edges if e.a != e.b]
    people = _people(nodes, ((e.a, e.b) for e in drawn))
    count = len(people)

    graph = nx.Graph()
    graph.add_nodes_from(p.id for p in people)
    rank = {outcome: i for i, outcome in enumerate(OUTCOMES)}
    edge_ranks: dict[str, list[int]] = {p.id: [] for p in people}
    for edge in drawn:
        graph.add_edge(edge.a, edge.b)
        edge_ranks[edge.a].append(rank[edge.outcome])
        edge_ranks[edge.b].append(rank[edge.outcome])

    order = {p.id: i for i, p in enumerate(people)}
    groups = [sorted(c, key=order.__getitem__) for c in nx.connected_components(graph)]
    groups.sort(key=lambda g: order[g[0]])
    random.Random(seed).shuffle(groups)

    def group_key(group: list[str]) -> tuple[bool, float]:
        ranks = [r for member in group for r in edge_ranks[member]]
        return (not ranks, sum(ranks) / len(ranks) if ranks else 0.0)

    groups.sort(key=group_key)

    show_labels = 0 < count <= LABEL_LIMIT
    in_red = {member for e in drawn if e.outcome in RED_OUTCOMES for member in (e.a, e.b)}
    if show_labels:
        # Three columns leave room for a name under each end of a line; the figure grows
        # taller with the rows rather than squeezing the names together.
        cols, cell_h, half_pair = 3, 0.36, 0.22
        rows = max(1, math.ceil(len(groups) / cols))
        unit_inches = 11.0 * _AXES_RECT[2] / cols
        figsize = (11.0, max(5.5, rows * cell_h * unit_inches / _AXES_RECT[3]))
    else:
        figsize = (11.0, 10.0)
        axes_w, axes_h = _axes_inches(figsize)
        cell_h, half_pair = 0.55, 0.3
        cols = round(math.sqrt(len(groups) * (axes_w / axes_h) * cell_h)) if groups else 1
        cols = max(1, min(cols, len(groups)))
        rows = max(1, math.ceil(len(groups) / cols))
    axes_w, axes_h = _axes_inches(figsize)
    ring_radius = min(half_pair, 0.4 * cell_h)

    positions: dict[str, tuple[float, float]] = {}
    directions: dict[str, tuple[float, float]] = {}
    for i, group in enumerate(groups):
        cx, cy = i % cols + 0.5, -(i // cols + 0.5) * cell_h
        for member, (dx, dy) in zip(group, _group_shape(len(group), half_pair, ring_radius), strict=True):
            positions[member] = (cx + dx, cy + dy)
            directions[member] = _label_direction(dx, dy, len(group))

    # Points per grid cell once the grid is fitted to the axes with equal aspect.
    cell_points = min(axes_w * 72.0 / cols, axes_h * 72.0 / (rows * cell_h))
    line_width = min(3.5, max(1.2, cell_points * 0.07))
    marker_diameter = min(11.0, max(3.0, cell_points * 0.16))

    colours, org_legend = _org_colours(people, org_colours)
    counts = Counter(e.outcome for e in drawn)
    # Above the label limit only the people in red pairs are named: those are who to ask why.
    named = {p.id for p in people} if show_labels else in_red
    red_note = " Names: people in red pairs only." if count > LABEL_LIMIT and in_red else ""
    return NetworkPlan(
        **_drawn_people(people, positions, colours, directions, named),
        segments=tuple((positions[e.a], positions[e.b]) for e in drawn),
        edge_colours=tuple(OUTCOME_COLOURS[e.outcome] for e in drawn),
        edge_widths=tuple(line_width for _ in drawn),
        edge_styles=tuple(OUTCOME_STYLES[e.outcome] for e in drawn),
        edge_alpha=0.9,
        edge_bend=0.0,
        edge_legend_title=f"Pairs in {len(groups):,} groups",
        # Disputes are rare: listed only when there are some.
        edge_legend=tuple(
            LegendEntry(f"{OUTCOME_NAMES[o]} ({counts[o]:,})", OUTCOME_COLOURS[o], 3.0, OUTCOME_STYLES[o])
            for o in OUTCOMES
            if counts[o] or o != DISPUTED
        ),
        org_legend=org_legend,
        marker_size=marker_diameter**2,
        figsize=figsize,
        extent=(0.0, float(cols), -rows * cell_h, 0.0),
        top_align=True,
        subtitle=(
            f"{count:,} people. Each line joins two people in a group; "
            "dots are people coloured by organisation." + red_note
        ),
        empty_message="" if count else "No groups in this round",
    )


def plan_met_network(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str, int]],
    *,
    seed: int = 0,
    org_colours: Mapping[str, str] | None = None,
) -> NetworkPlan:
    """Everyone who has met whom: named people on a circle, or clusters by organisation.

    Up to LABEL_LIMIT people sit on a circle ordered by organisation, names outside. Beyond that
    each organisation with a legend colour gets its own cluster (the rest share a grey one) on a
    ring, so the lines between clusters form bundles whose density shows how much organisations
    mix. Pairs given twice (either order) are merged; times_met < 1 and self-loops are dropped.
    """
    times = _times_met(edges)
    people = _people(nodes, times)
    count = len(people)
    colours, org_legend = _org_colours(people, org_colours)
    met_someone = {member for pair in times for member in pair}
    alone = sum(1 for p in people if p.id not in met_someone)
    alone_note = f" {alone:,} have not met anyone yet (no line)." if alone else ""

    show_labels = 0 < count <= LABEL_LIMIT
    named = {p.id for p in people} if show_labels else set()
    if show_labels:
        positions, directions = _circle_layout(people, org_legend, colours)
        figsize = (11.0, 8.5)
        extent = (-1.3, 1.3, -1.2, 1.2)  # room for the names outside the circle
        marker_diameter = 11.0 if count <= 30 else 8.0
        subtitle = (
            f"{count:,} people, ordered by organisation. Each line joins two people who have met."
            + alone_note
        )
    else:
        positions = _cluster_layout(people, colours, org_legend, seed)
        directions = {p.id: (0.0, -1.0) for p in people}
        figsize = (11.0, 10.0)
        xs = [x for x, _ in positions.values()] or [0.0]
        ys = [y for _, y in positions.values()] or [0.0]
        extent = (min(xs) - 1.0, max(xs) + 1.0, min(ys) - 1.0, max(ys) + 1.0)
        marker_diameter = min(8.0, max(2.4, 110.0 / math.sqrt(max(count, 1))))
        subtitle = (
            f"{count:,} people, grouped by organisation. Each line joins two people who have met."
            + alone_note
        )

    # Repeat meetings are drawn last so they stay visible on top of the single ones.
    ordered = sorted(times.items(), key=lambda item: (item[1], item[0]))
    base_width = 1.2 if show_labels else 0.35
    once = sum(1 for n in times.values() if n == 1)
    repeat = len(times) - once
    return NetworkPlan(
        **_drawn_people(people, positions, colours, directions, named),
        segments=tuple((positions[a], positions[b]) for (a, b), _ in ordered),
        edge_colours=tuple(MET_EDGE_COLOUR for _ in ordered),
        edge_widths=tuple(base_width * min(3.0, 1.0 + 0.8 * (n - 1)) for _, n in ordered),
        edge_styles=tuple("solid" for _ in ordered),
        edge_alpha=min(0.6, max(0.05, 6.0 / math.sqrt(max(len(times), 1)))),
        # Curving lines through the middle of the ring of clusters bundles them into fans,
        # so the clusters stay visible instead of being covered by straight criss-crossing lines.
        edge_bend=0.0 if show_labels else 0.6,
        edge_legend_title=f"Pairs who have met: {len(times):,}",
        edge_legend=(
            LegendEntry(f"once ({once:,})", MET_EDGE_COLOUR, 1.2),
            LegendEntry(f"more than once ({repeat:,})", MET_EDGE_COLOUR, 3.0),
        ),
        org_legend=org_legend,
        marker_size=marker_diameter**2,
        figsize=figsize,
        extent=extent,
        top_align=False,
        subtitle=subtitle,
        empty_message="" if count else "Nobody has met yet",
    )


def plan_mixing(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str, int]],
    *,
    org_colours: Mapping[str, str] | None = None,
) -> MixingPlan:
    """How many conversations crossed each pair of organisations (the coloured ones; the rest are
    "other"), and who has not met anyone yet."""
    times = _times_met(edges)
    people = _people(nodes, times)
    colours, legend = _org_colours(people, org_colours)
    named_orgs = {
        colour: entry for entry, colour in ((e, e.colour) for e in legend) if colour != OTHER_COLOUR
    }
    org_of_colour: dict[str, str] = {}
    for person in people:
        colour = colours[person.id]
        if colour in named_orgs and colour not in org_of_colour:
            org_of_colour[colour] = person.org.strip()
    ordered_colours = [e.colour for e in legend if e.colour in org_of_colour]
    labels = [_short(org_of_colour[c], MAX_LEGEND_CHARS) for c in ordered_colours]
    if any(colours[p.id] == OTHER_COLOUR for p in people):
        ordered_colours.append(OTHER_COLOUR)
        labels.append("other")
    index = {colour: i for i, colour in enumerate(ordered_colours)}
    size = len(ordered_colours)
    counts = [[0] * size for _ in range(size)]
    across = total = 0
    org = {p.id: p.org.strip().casefold() for p in people}
    for (a, b), n in times.items():
        i, j = sorted((index[colours[a]], index[colours[b]]))
        counts[i][j] += n
        if i != j:
            counts[j][i] += n
        total += n
        across += n if not org[a] or org[a] != org[b] else 0
    met_someone = {member for pair in times for member in pair}
    alone = sorted(
        (p for p in people if p.id not in met_someone),
        key=lambda p: ((p.full_name or p.label).casefold(), p.id),
    )
    share = across / total if total else 0.0
    return MixingPlan(
        orgs=tuple(labels),
        colours=tuple(ordered_colours),
        counts=tuple(tuple(row) for row in counts),
        across_share=share,
        never_met=tuple(
            _short(p.full_name or p.label or "(erased)", MAX_LEGEND_CHARS) for p in alone[:MIXING_NAMES_SHOWN]
        ),
        never_met_count=len(alone),
        subtitle=(
            f"{len(people):,} people, {total:,} conversations, {100 * share:.0f}% across organisations. "
            "Each cell: conversations between people of the two organisations."
        ),
    )


MIXING_NAMES_SHOWN = 30


def _times_met(edges: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """Pairs given twice (either order) merged; times_met < 1 and self-loops dropped."""
    times: dict[tuple[str, str], int] = {}
    for a, b, n in edges:
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"times met for {a}-{b} must be a whole number, got {n!r}")
        if a == b or n < 1:
            continue
        key = (a, b) if a <= b else (b, a)
        times[key] = times.get(key, 0) + n
    return times


# --------------------------------------------------------------------------- layout helpers


def _people(nodes: Sequence[Node], pairs: Iterable[tuple[str, str]]) -> list[Node]:
    """Nodes in input order, first of each id kept, plus unnamed nodes for unknown edge ends."""
    people: dict[str, Node] = {}
    for node in nodes:
        people.setdefault(node.id, node)
    for a, b in pairs:
        for member in (a, b):
            if member not in people:
                people[member] = Node(id=member, label="", org="")
    return list(people.values())


def _org_colours(
    people: Sequence[Node], fixed: Mapping[str, str] | None = None
) -> tuple[dict[str, str], tuple[LegendEntry, ...]]:
    """Colour per person by organisation: ``fixed`` (one colouring for every chart in an email),
    else the largest ten here get colours; the rest grey."""
    sizes = Counter(p.org.strip() for p in people if p.org.strip())
    ranked = sorted(sizes, key=lambda org: (-sizes[org], org.casefold(), org))
    if fixed is None:
        coloured = {org: ORG_PALETTE[i] for i, org in enumerate(ranked[: len(ORG_PALETTE)])}
    else:
        palette_order = {colour: i for i, colour in enumerate(ORG_PALETTE)}
        present = [org for org in ranked if org in fixed]
        coloured = {org: fixed[org] for org in sorted(present, key=lambda o: palette_order.get(fixed[o], 99))}
    colours = {p.id: coloured.get(p.org.strip(), OTHER_COLOUR) for p in people}
    legend = [
        LegendEntry(f"{_short(org, MAX_LEGEND_CHARS)} ({sizes[org]:,})", colour)
        for org, colour in coloured.items()
    ]
    rest_orgs = len(ranked) - len(coloured)
    rest_people = sum(1 for p in people if p.org.strip() not in coloured)
    if rest_people:
        if rest_orgs:
            plural = "s" if rest_orgs > 1 else ""
            name = f"{rest_orgs:,} other organisation{plural}"
        else:
            name = "organisation not given"
        legend.append(LegendEntry(f"{name} ({rest_people:,})", OTHER_COLOUR))
    return colours, tuple(legend)


def _group_shape(size: int, half_pair: float, radius: float) -> list[tuple[float, float]]:
    """Offsets inside a grid cell: a horizontal pair, a triangle, or a small ring."""
    if size == 1:
        return [(0.0, 0.0)]
    if size == 2:
        return [(-half_pair, 0.0), (half_pair, 0.0)]
    return [
        (
            radius * math.cos(math.pi / 2 + 2 * math.pi * k / size),
            radius * math.sin(math.pi / 2 + 2 * math.pi * k / size) * 0.9,
        )
        for k in range(size)
    ]


def _label_direction(dx: float, dy: float, size: int) -> tuple[float, float]:
    """Names go under a pair's ends, above or below a triangle's corners, outside a ring."""
    if size <= 3 or math.hypot(dx, dy) == 0:
        return (0.0, 1.0) if dy > 0.01 else (0.0, -1.0)
    length = math.hypot(dx, dy)
    return (dx / length, dy / length)


def _legend_rank(colours: dict[str, str], legend: Sequence[LegendEntry]) -> dict[str, int]:
    """Rank of each person's colour in the organisation legend (grey last)."""
    by_colour = {entry.colour: i for i, entry in enumerate(legend)}
    return {pid: by_colour.get(colour, len(legend)) for pid, colour in colours.items()}


def _circle_layout(
    people: Sequence[Node], legend: Sequence[LegendEntry], colours: dict[str, str]
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """People on a circle, clockwise from the top, organisations in legend order."""
    rank = _legend_rank(colours, legend)
    ordered = sorted(people, key=lambda p: (rank[p.id], p.org.casefold(), p.label.casefold(), p.id))
    positions: dict[str, tuple[float, float]] = {}
    directions: dict[str, tuple[float, float]] = {}
    for k, person in enumerate(ordered):
        angle = math.pi / 2 - 2 * math.pi * k / len(ordered)
        direction = (math.cos(angle), math.sin(angle))
        positions[person.id] = direction
        directions[person.id] = direction
    return positions, directions


def _cluster_layout(
    people: Sequence[Node], colours: dict[str, str], legend: Sequence[LegendEntry], seed: int
) -> dict[str, tuple[float, float]]:
    """One sunflower-packed disc per legend colour, discs spaced around a ring."""
    rank = _legend_rank(colours, legend)
    clusters: dict[int, list[Node]] = {}
    for person in people:
        clusters.setdefault(rank[person.id], []).append(person)
    keys = sorted(clusters)
    if not keys:
        return {}
    radii = [math.sqrt(len(clusters[k])) for k in keys]
    gap = max(3.0, 0.25 * max(radii))

    centres: list[tuple[float, float]]
    if len(keys) == 1:
        centres = [(0.0, 0.0)]
    else:
        arcs = [2 * r + gap for r in radii]
        share = [a / sum(arcs) for a in arcs]
        angles, start = [], math.pi / 2
        for s in share:
            angles.append(start - math.pi * s)
            start -= 2 * math.pi * s
        # Keeping the middle of the ring clear lets the lines between clusters cross there.
        ring = max(sum(arcs) / (2 * math.pi), 1.5 * max(radii) + gap)
        # Growing the ring until no two discs overlap: arcs alone underestimate the chord
        # when one cluster (often "other") holds most of the people.
        while True:
            centres = [(ring * math.cos(a), ring * math.sin(a)) for a in angles]
            if all(
                math.dist(centres[i], centres[j]) >= radii[i] + radii[j] + gap * 0.5
                for i in range(len(keys))
                for j in range(i + 1, len(keys))
            ):
                break
            ring *= 1.05

    rng = random.Random(seed)
    positions: dict[str, tuple[float, float]] = {}
    for key, radius, (cx, cy) in zip(keys, radii, centres, strict=True):
        # Grouping by organisation inside the grey cluster keeps small organisations together.
        members = sorted(clusters[key], key=lambda p: (p.org.casefold(), p.id))
        if colours[members[0].id] != OTHER_COLOUR:
            rng.shuffle(members)
        for k, person in enumerate(members):
            r = radius * math.sqrt((k + 0.5) / len(members))
            positions[person.id] = (
                cx + r * math.cos(k * _GOLDEN_ANGLE),
                cy + r * math.sin(k * _GOLDEN_ANGLE),
            )
    return positions


def _short(text: str, limit: int) -> str:
    """One line, at most `limit` characters, with an ellipsis when cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def _plain(text: str) -> str:
    """Escape '$' so matplotlib never treats names or titles as mathtext."""
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------- rendering


def _axes_inches(figsize: tuple[float, float]) -> tuple[float, float]:
    return figsize[0] * _AXES_RECT[2], figsize[1] * _AXES_RECT[3]


_CURVE_CODES = (Path.MOVETO, Path.CURVE3, Path.CURVE3)


def _fit_limits(
    extent: tuple[float, float, float, float], box: tuple[float, float], top_align: bool
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits showing `extent` at equal x and y scale, filling a box of `box` inches.

    Done by hand rather than with set_aspect("equal"), which would shrink the axes or move
    their limits after the fact.
    """
    x0, x1, y0, y1 = extent
    width, height = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
    units_per_inch = max(width / box[0], height / box[1])
    need_w, need_h = box[0] * units_per_inch, box[1] * units_per_inch
    centre_x = (x0 + x1) / 2
    xlim = (centre_x - need_w / 2, centre_x + need_w / 2)
    if top_align:
        ylim = (y1 - need_h, y1)
    else:
        centre_y = (y0 + y1) / 2
        ylim = (centre_y - need_h / 2, centre_y + need_h / 2)
    return xlim, ylim


def _to_png(figure: Figure) -> bytes:
    """Render to a 256-colour PNG.

    Thousands of translucent lines give a full-colour PNG of about 1 MB at 2,000 members; an
    octree palette keeps the distinct organisation and outcome colours and cuts that to about
    a fifth, which matters as each picture goes out inline and again as an attachment.
    Pillow is already a dependency of matplotlib. Neither step writes a timestamp or version,
    so the bytes depend only on the input.
    """
    canvas = FigureCanvasAgg(figure)
    try:
        canvas.draw()
        rgb = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
        rgb = rgb.convert("RGB")
    finally:
        figure.clear()
    palette = rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    # The octree averages white with its near-white neighbours into a faint grey; the corner
    # is always background, so its palette entry is set back to pure white.
    colours = palette.getpalette() or []
    background = palette.getpixel((0, 0))
    if isinstance(background, int) and len(colours) >= 3 * (background + 1):
        colours[3 * background : 3 * background + 3] = [255, 255, 255]
        palette.putpalette(colours)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _titles(figure: Figure, title: str, subtitle: str) -> None:
    figure.text(0.02, 0.965, _plain(_short(title, 90)), fontsize=15, weight="bold", va="top")
    if subtitle:
        figure.text(0.02, 0.925, _plain(subtitle), fontsize=10, color="#555555", va="top")


def _empty_chart(figure: Figure, rect: tuple[float, float, float, float], message: str) -> bytes:
    """A chart with nothing to draw: its message in the middle, in grey."""
    axes = figure.add_axes(rect)
    axes.set_axis_off()
    axes.text(
        0.5, 0.5, message, ha="center", va="center", fontsize=14, color="#777777", transform=axes.transAxes
    )
    return _to_png(figure)


def _drawn_people(
    people: Sequence[Node],
    positions: Mapping[str, tuple[float, float]],
    colours: Mapping[str, str],
    directions: Mapping[str, tuple[float, float]],
    named: Collection[str],
) -> dict[str, tuple[Any, ...]]:
    """The people fields of a ``NetworkPlan``, in ``people``'s order; only the ``named`` ids get a label."""
    return {
        "node_ids": tuple(p.id for p in people),
        "positions": tuple(positions[p.id] for p in people),
        "node_colours": tuple(colours[p.id] for p in people),
        "labels": tuple(_short(p.label, MAX_LABEL_CHARS) if p.id in named else "" for p in people),
        "label_directions": tuple(directions[p.id] for p in people),
    }


def _render_network(plan: NetworkPlan, title: str) -> bytes:
    figure = Figure(figsize=plan.figsize, dpi=DPI, facecolor="white")
    _titles(figure, title, "" if plan.empty_message else plan.subtitle)
    if plan.empty_message:
        return _empty_chart(figure, _AXES_RECT, plan.empty_message)
    axes = figure.add_axes(_AXES_RECT)
    axes.set_axis_off()

    xlim, ylim = _fit_limits(plan.extent, _axes_inches(plan.figsize), plan.top_align)
    axes.set_xlim(*xlim)
    axes.set_ylim(*ylim)
    if plan.segments and plan.edge_bend:
        keep = 1.0 - plan.edge_bend
        paths = [
            Path([a, ((a[0] + b[0]) / 2 * keep, (a[1] + b[1]) / 2 * keep), b], _CURVE_CODES)
            for a, b in plan.segments
        ]
        axes.add_collection(
            PathCollection(
                paths,
                facecolors="none",
                edgecolors=plan.edge_colours,
                linewidths=plan.edge_widths,
                alpha=plan.edge_alpha,
                zorder=1,
            )
        )
    elif plan.segments:
        axes.add_collection(
            LineCollection(
                plan.segments,
                colors=plan.edge_colours,
                linewidths=plan.edge_widths,
                linestyles=list(plan.edge_styles),
                alpha=plan.edge_alpha,
                capstyle="butt",
                zorder=1,
            )
        )
    xs = [x for x, _ in plan.positions]
    ys = [y for _, y in plan.positions]
    small = bool(any(plan.labels)) and len(plan.labels) <= LABEL_LIMIT
    # A white rim keeps small grey dots apart from grey lines underneath.
    axes.scatter(
        xs,
        ys,
        s=plan.marker_size,
        c=list(plan.node_colours),
        zorder=2,
        edgecolors="#333333" if small else "white",
        linewidths=0.6 if small else 0.3,
    )
    for (x, y), label, (dx, dy) in zip(plan.positions, plan.labels, plan.label_directions, strict=True):
        if label:
            axes.annotate(
                label,
                (x, y),
                xytext=(9 * dx, 9 * dy),
                textcoords="offset points",
                ha="left" if dx > 0.3 else "right" if dx < -0.3 else "center",
                va="bottom" if dy > 0.3 else "top" if dy < -0.3 else "center",
                fontsize=9 if small else 7.5,
                zorder=3,
                parse_math=False,
                bbox=None
                if small
                else {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )

    edge_handles = [
        Line2D([], [], color=e.colour, lw=e.line_width, ls=e.line_style, label=_plain(e.label))
        for e in plan.edge_legend
    ]
    _side_legend(figure, edge_handles, top=0.88, title=_plain(plan.edge_legend_title), fontsize=10)
    org_handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=8,
            markerfacecolor=e.colour,
            markeredgecolor="#333333",
            markeredgewidth=0.5,
            label=_plain(e.label),
        )
        for e in plan.org_legend
    ]
    _side_legend(figure, org_handles, top=0.66, title="Organisations", fontsize=9)
    return _to_png(figure)


def _side_legend(figure: Figure, handles: list[Line2D], *, top: float, title: str, fontsize: int) -> None:
    """A legend in the column right of the network, its top left corner at (0.74, ``top``)."""
    figure.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.74, top),
        frameon=False,
        fontsize=fontsize,
        title=title,
        title_fontsize=10,
        alignment="left",
    )


def _render_mixing(plan: MixingPlan, title: str) -> bytes:
    size = len(plan.orgs)
    figure = Figure(figsize=(11.0, 9.0), dpi=DPI, facecolor="white")
    _titles(figure, title, plan.subtitle)
    axes = figure.add_axes((0.20, 0.22, 0.50, 0.64))
    if not size:
        axes.set_axis_off()
        axes.text(0.5, 0.5, "Nobody yet", ha="center", va="center", fontsize=14, color="#777777")
        return _to_png(figure)
    axes.imshow(plan.counts, cmap="Blues", vmin=0, aspect="equal")
    biggest = max((max(row) for row in plan.counts), default=0) or 1
    for i, row in enumerate(plan.counts):
        for j, value in enumerate(row):
            if value:
                axes.text(
                    j,
                    i,
                    f"{value:,}",
                    ha="center",
                    va="center",
                    fontsize=9 if size <= 8 else 7.5,
                    color="white" if value > 0.6 * biggest else "#222222",
                )
    labels = [_plain(org) for org in plan.orgs]
    axes.set_xticks(range(size), labels, rotation=40, ha="right", fontsize=9)
    axes.set_yticks(range(size), labels, fontsize=9)
    for ticks in (axes.get_xticklabels(), axes.get_yticklabels()):
        for label, colour in zip(ticks, plan.colours, strict=True):
            label.set_color(colour if colour != OTHER_COLOUR else "#555555")
            label.set_fontweight("bold")
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_title(
        "Diagonal: within one organisation ('other': between the smaller ones)",
        fontsize=9,
        color="#555555",
        loc="left",
    )
    lines = [f"Not met anyone yet: {plan.never_met_count:,}"]
    lines += [f"  {_plain(name)}" for name in plan.never_met]
    if plan.never_met_count > len(plan.never_met):
        lines.append(f"  ... and {plan.never_met_count - len(plan.never_met):,} more")
    figure.text(0.76, 0.86, "\n".join(lines), fontsize=9, va="top", family="sans-serif")
    return _to_png(figure)


def _render_growth(plan: GrowthPlan, title: str) -> bytes:
    if plan.round_x:
        return _render_growth_with_rounds(plan, title)
    figure = Figure(figsize=(11.0, 6.5), dpi=DPI, facecolor="white")
    if not plan.x:
        _titles(figure, title, "")
        return _empty_chart(figure, (0.05, 0.05, 0.9, 0.8), "No members yet")

    _titles(figure, title, f"{plan.months[0]} to {plan.months[-1]}")
    top = figure.add_axes((0.08, 0.44, 0.88, 0.40))
    bottom = figure.add_axes((0.08, 0.10, 0.88, 0.26), sharex=top)
    _draw_members_and_flows(plan, top, bottom)
    return _to_png(figure)


def _render_growth_with_rounds(plan: GrowthPlan, title: str) -> bytes:
    """The members and flows panels, and below them the impact: conversations held per round
    (bars) and the met rate (line), with a mark where the schedule changed."""
    figure = Figure(figsize=(11.0, 9.0), dpi=DPI, facecolor="white")
    _titles(figure, title, f"{plan.months[0]} to {plan.months[-1]}")
    top = figure.add_axes((0.08, 0.60, 0.84, 0.27))
    middle = figure.add_axes((0.08, 0.36, 0.84, 0.17), sharex=top)
    bottom = figure.add_axes((0.08, 0.08, 0.84, 0.20), sharex=top)
    _draw_members_and_flows(plan, top, middle)
    middle.tick_params(labelbottom=False)
    held = bottom.bar(plan.round_x, plan.conversations, width=0.7, color="#2ca02c", alpha=0.8)
    if len(plan.round_x) <= 24:
        bottom.bar_label(held, labels=[f"{v:,}" for v in plan.conversations], fontsize=8, padding=2)
    bottom.set_ylim(0, max(max(plan.conversations), 1) * 1.3)
    bottom.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    rate = bottom.twinx()
    rate.plot(plan.round_x, plan.met_rates, color="#333333", lw=1.8, marker="o", markersize=3.5)
    rate.set_ylim(0, 110)
    rate.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.0f}%"))
    rate.spines[["top"]].set_visible(False)
    _panel_legend(
        bottom,
        [
            Patch(
                color="#2ca02c", alpha=0.8, label=f"conversations held ({sum(plan.conversations):,} in total)"
            ),
            Line2D([], [], color="#333333", lw=1.8, marker="o", markersize=3.5, label="met rate per round"),
        ],
    )
    _month_axis(bottom, plan)
    bottom.spines[["top"]].set_visible(False)
    bottom.grid(axis="y", color="#e6e6e6", lw=0.8)
    bottom.set_axisbelow(True)
    for x, schedule in plan.changes:
        for axes in (top, middle, bottom):
            axes.axvline(x - 0.5, color="#7b3294", lw=1.2, ls=(0, (4, 2)), zorder=0)
        # The label goes on the side of the line with room for it.
        right_half = x > plan.x[-1] / 2
        top.annotate(
            _plain(_short(f"from here: {schedule}", 44)),
            (x - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if right_half else 4, -2),
            textcoords="offset points",
            fontsize=8.5,
            color="#7b3294",
            va="top",
            ha="right" if right_half else "left",
        )
    return _to_png(figure)


def _draw_members_and_flows(plan: GrowthPlan, top, bottom) -> None:
    thousands = FuncFormatter(lambda value, _pos: f"{value:,.0f}")

    top.plot(
        plan.x,
        plan.members,
        color="#2c3e50",
        lw=2.2,
        marker="o" if len(plan.x) <= 24 else None,
        markersize=4,
        label="members at month end (active + paused)",
    )
    top.fill_between(plan.x, plan.members, color="#2c3e50", alpha=0.08)
    top.annotate(
        f"{plan.members[-1]:,}",
        (plan.x[-1], plan.members[-1]),
        xytext=(0, 8),
        textcoords="offset points",
        ha="center",
        fontsize=10,
        weight="bold",
    )
    top.set_ylim(0, max(max(plan.members), 1) * 1.18)
    top.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    top.yaxis.set_major_formatter(thousands)
    # Legends sit above their panel so they never cover a bar or the line.
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=10, borderaxespad=0.2)
    top.tick_params(labelbottom=False)

    joined = bottom.bar(plan.x, plan.joins, width=0.7, color="#3b7dc4")
    left = bottom.bar(plan.x, plan.leaves, width=0.7, color="#e1812c")
    if len(plan.x) <= 24:
        for bars in (joined, left):
            bottom.bar_label(
                bars, labels=[f"{abs(v):,}" if v else "" for v in bars.datavalues], fontsize=8, padding=2
            )
    bottom.axhline(0, color="#333333", lw=0.8)
    most_joins, most_leaves = max(plan.joins), -min(plan.leaves)
    headroom = 0.22 * max(most_joins, most_leaves, 1)
    bottom.set_ylim(-(most_leaves + headroom), most_joins + headroom)
    bottom.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{abs(value):,.0f}"))
    _panel_legend(
        bottom,
        [
            Patch(color="#3b7dc4", label=f"joined ({sum(plan.joins):,} in total)"),
            Patch(color="#e1812c", label=f"left ({-sum(plan.leaves):,} in total)"),
        ],
    )
    _month_axis(bottom, plan)

    for axes in (top, bottom):
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(axis="y", color="#e6e6e6", lw=0.8)
        axes.set_axisbelow(True)


def _panel_legend(axes, handles: list) -> None:
    axes.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        frameon=False,
        fontsize=9,
        ncols=2,
        borderaxespad=0.2,
    )


def _month_axis(axes, plan: GrowthPlan) -> None:
    axes.set_xticks([x for x, _ in plan.ticks], [label for _, label in plan.ticks])
    # A few months of data would otherwise stretch into a handful of very wide bars.
    axes.set_xlim(-0.6, max(plan.x[-1], 5) + 0.6)
