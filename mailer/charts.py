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
from collections.abc import Iterable, Mapping, Sequence
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
OUTCOME_COLOURS = {MET: "#2ca02c", DISPUTED: "#f5a000", MISSED: "#d62728", NO_REPLY: "#9a9a9a"}
OUTCOME_NAMES = {MET: "met", DISPUTED: "disputed", MISSED: "missed", NO_REPLY: "no reply"}

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

# Above this many people, names overlap whatever the layout: draw dots only.
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


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    outcome: str  # "met" | "disputed" | "missed" | "no_reply"


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class LegendEntry:
    label: str
    colour: str
    line_width: float = 0.0  # 0 for a marker entry (a person), > 0 for a line entry


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


# --------------------------------------------------------------------------- public API


def growth_chart_png(points: Sequence[MonthPoint], *, title: str) -> bytes:
    """Members over time (line) above joins and leaves per month (bars)."""
    return _render_growth(plan_growth(points), title)


def round_network_png(nodes: Sequence[Node], edges: Sequence[Edge], *, title: str, seed: int = 0) -> bytes:
    """This round's groups as lines coloured by outcome; people coloured by organisation."""
    return _render_network(plan_round_network(nodes, edges, seed=seed), title)


def met_network_png(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str, int]], *, title: str, seed: int = 0
) -> bytes:
    """Everyone who has met whom so far; edges are (a, b, times_met)."""
    return _render_network(plan_met_network(nodes, edges, seed=seed), title)


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


def plan_growth(points: Sequence[MonthPoint]) -> GrowthPlan:
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
    return GrowthPlan(
        x=tuple(i - first for i in order),
        months=tuple(p.month for p in ordered),
        members=tuple(p.members for p in ordered),
        joins=tuple(p.joins for p in ordered),
        leaves=tuple(-p.leaves for p in ordered),
        ticks=month_ticks(first, order[-1] - first + 1),
    )


# --------------------------------------------------------------------------- network plans


def plan_round_network(nodes: Sequence[Node], edges: Sequence[Edge], *, seed: int = 0) -> NetworkPlan:
    """Groups laid out on a grid, fully met groups first, then disputed, missed, no reply.

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

    colours, org_legend = _org_colours(people)
    counts = Counter(e.outcome for e in drawn)
    return NetworkPlan(
        **_drawn_people(people, positions, colours, directions, show_labels),
        segments=tuple((positions[e.a], positions[e.b]) for e in drawn),
        edge_colours=tuple(OUTCOME_COLOURS[e.outcome] for e in drawn),
        edge_widths=tuple(line_width for _ in drawn),
        edge_alpha=0.9,
        edge_bend=0.0,
        edge_legend_title=f"Pairs in {len(groups):,} groups",
        # Disputes are rare: listed only when there are some.
        edge_legend=tuple(
            LegendEntry(f"{OUTCOME_NAMES[o]} ({counts[o]:,})", OUTCOME_COLOURS[o], 3.0)
            for o in OUTCOMES
            if o != DISPUTED or counts[o]
        ),
        org_legend=org_legend,
        marker_size=marker_diameter**2,
        figsize=figsize,
        extent=(0.0, float(cols), -rows * cell_h, 0.0),
        top_align=True,
        subtitle=(
            f"{count:,} people. Each line joins two people in a group; "
            "dots are people coloured by organisation."
        ),
        empty_message="" if count else "No groups in this round",
    )


def plan_met_network(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str, int]], *, seed: int = 0
) -> NetworkPlan:
    """Everyone who has met whom: named people on a circle, or clusters by organisation.

    Up to LABEL_LIMIT people sit on a circle ordered by organisation, names outside. Beyond that
    each organisation with a legend colour gets its own cluster (the rest share a grey one) on a
    ring, so the lines between clusters form bundles whose density shows how much organisations
    mix. Pairs given twice (either order) are merged; times_met < 1 and self-loops are dropped.
    """
    times: dict[tuple[str, str], int] = {}
    for a, b, n in edges:
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"times met for {a}-{b} must be a whole number, got {n!r}")
        if a == b or n < 1:
            continue
        key = (a, b) if a <= b else (b, a)
        times[key] = times.get(key, 0) + n
    people = _people(nodes, times)
    count = len(people)
    colours, org_legend = _org_colours(people)

    show_labels = 0 < count <= LABEL_LIMIT
    if show_labels:
        positions, directions = _circle_layout(people, org_legend, colours)
        figsize = (11.0, 8.5)
        extent = (-1.3, 1.3, -1.2, 1.2)  # room for the names outside the circle
        marker_diameter = 11.0 if count <= 30 else 8.0
        subtitle = f"{count:,} people, ordered by organisation. Each line joins two people who have met."
    else:
        positions = _cluster_layout(people, colours, org_legend, seed)
        directions = {p.id: (0.0, -1.0) for p in people}
        figsize = (11.0, 10.0)
        xs = [x for x, _ in positions.values()] or [0.0]
        ys = [y for _, y in positions.values()] or [0.0]
        extent = (min(xs) - 1.0, max(xs) + 1.0, min(ys) - 1.0, max(ys) + 1.0)
        marker_diameter = min(8.0, max(2.4, 110.0 / math.sqrt(max(count, 1))))
        subtitle = f"{count:,} people, grouped by organisation. Each line joins two people who have met."

    # Repeat meetings are drawn last so they stay visible on top of the single ones.
    ordered = sorted(times.items(), key=lambda item: (item[1], item[0]))
    base_width = 1.2 if show_labels else 0.35
    once = sum(1 for n in times.values() if n == 1)
    repeat = len(times) - once
    return NetworkPlan(
        **_drawn_people(people, positions, colours, directions, show_labels),
        segments=tuple((positions[a], positions[b]) for (a, b), _ in ordered),
        edge_colours=tuple(MET_EDGE_COLOUR for _ in ordered),
        edge_widths=tuple(base_width * min(3.0, 1.0 + 0.8 * (n - 1)) for _, n in ordered),
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


def _org_colours(people: Sequence[Node]) -> tuple[dict[str, str], tuple[LegendEntry, ...]]:
    """Colour per person by organisation: the largest ten get colours, the rest grey."""
    sizes = Counter(p.org.strip() for p in people if p.org.strip())
    ranked = sorted(sizes, key=lambda org: (-sizes[org], org.casefold(), org))
    coloured = {org: ORG_PALETTE[i] for i, org in enumerate(ranked[: len(ORG_PALETTE)])}
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
    show_labels: bool,
) -> dict[str, tuple[Any, ...]]:
    """The people fields of a ``NetworkPlan``, in ``people``'s order."""
    return {
        "node_ids": tuple(p.id for p in people),
        "positions": tuple(positions[p.id] for p in people),
        "node_colours": tuple(colours[p.id] for p in people),
        "labels": tuple(_short(p.label, MAX_LABEL_CHARS) if show_labels else "" for p in people),
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
                alpha=plan.edge_alpha,
                capstyle="round",
                zorder=1,
            )
        )
    xs = [x for x, _ in plan.positions]
    ys = [y for _, y in plan.positions]
    small = bool(any(plan.labels))
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
                fontsize=9,
                zorder=3,
                parse_math=False,
            )

    edge_handles = [
        Line2D([], [], color=e.colour, lw=e.line_width, label=_plain(e.label)) for e in plan.edge_legend
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


def _render_growth(plan: GrowthPlan, title: str) -> bytes:
    figure = Figure(figsize=(11.0, 6.5), dpi=DPI, facecolor="white")
    if not plan.x:
        _titles(figure, title, "")
        return _empty_chart(figure, (0.05, 0.05, 0.9, 0.8), "No members yet")

    _titles(figure, title, f"{plan.months[0]} to {plan.months[-1]}")
    top = figure.add_axes((0.08, 0.44, 0.88, 0.40))
    bottom = figure.add_axes((0.08, 0.10, 0.88, 0.26), sharex=top)
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
    bottom.legend(
        handles=[
            Patch(color="#3b7dc4", label=f"joined ({sum(plan.joins):,} in total)"),
            Patch(color="#e1812c", label=f"left ({-sum(plan.leaves):,} in total)"),
        ],
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        frameon=False,
        fontsize=9,
        ncols=2,
        borderaxespad=0.2,
    )
    bottom.set_xticks([x for x, _ in plan.ticks], [label for _, label in plan.ticks])
    # A few months of data would otherwise stretch into a handful of very wide bars.
    bottom.set_xlim(-0.6, max(plan.x[-1], 5) + 0.6)

    for axes in (top, bottom):
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(axis="y", color="#e6e6e6", lw=0.8)
        axes.set_axisbelow(True)
    return _to_png(figure)
