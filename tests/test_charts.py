"""Organiser summary pictures: PNG output, draw plans, layouts and bad input."""

from __future__ import annotations

import io
import math
import random
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from mailer.charts import (
    LABEL_LIMIT,
    MET_EDGE_COLOUR,
    ORG_PALETTE,
    OTHER_COLOUR,
    OUTCOME_COLOURS,
    Edge,
    MonthPoint,
    Node,
    RoundPoint,
    growth_chart_png,
    met_network_png,
    month_index,
    month_ticks,
    organisation_colours,
    plan_growth,
    plan_met_network,
    plan_mixing,
    plan_round_network,
    round_network_png,
)

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def assert_sensible_png(data: bytes) -> tuple[int, int]:
    width, height = png_size(data)
    assert 600 <= width <= 2000 and 400 <= height <= 2000, (width, height)
    assert data.endswith(b"IEND\xaeB`\x82")
    return width, height


def programme(size: int, rounds: int = 12, orgs: int | None = None, seed: int = 7):
    """Synthetic people (uneven organisations), the last round's groups and who met whom."""
    rng = random.Random(seed)
    org_count = orgs if orgs is not None else max(3, size // 12)
    names = [f"Org {i}" for i in range(org_count)]
    weights = [1 / (k + 1) for k in range(org_count)]
    people = [Node(f"m{i}", f"P{i}", rng.choices(names, weights)[0]) for i in range(size)]
    met: Counter[tuple[str, str]] = Counter()
    last: list[Edge] = []
    for _ in range(rounds):
        ids = [p.id for p in people]
        rng.shuffle(ids)
        groups = [ids[i : i + 2] for i in range(0, len(ids) - len(ids) % 2, 2)]
        if len(ids) % 2 and groups:
            groups[-1].append(ids[-1])
        last = []
        for group in groups:
            for i in range(len(group)):
                for j in range(i + 1, len(group)):
                    outcome = rng.choice(["met", "met", "missed", "no_reply"])
                    last.append(Edge(group[i], group[j], outcome))
                    if outcome == "met":
                        met[tuple(sorted((group[i], group[j])))] += 1
    return people, last, [(a, b, n) for (a, b), n in met.items()]


def colour_pixels(data: bytes) -> Counter[str]:
    """How many pixels of the diagram (left of the legends) look clearly red or green."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    diagram = image.crop((0, 0, int(image.width * 0.72), image.height))
    raw = diagram.tobytes()
    counts: Counter[str] = Counter()
    for r, g, b in zip(raw[0::3], raw[1::3], raw[2::3], strict=True):
        if r > 180 and g < 100 and b < 100:
            counts["red"] += 1
        elif g > 130 and r < 110 and b < 110:
            counts["green"] += 1
    return counts


# --------------------------------------------------------------------------- growth chart


def test_growth_chart_is_a_png_of_sensible_size():
    points = [MonthPoint(f"2026-{m:02d}", 10 * m, 12, m % 3) for m in range(1, 13)]
    assert_sensible_png(growth_chart_png(points, title="Members"))


@pytest.mark.parametrize("points", [[], [MonthPoint("2026-03", 0, 0, 0)], [MonthPoint("2026-03", 1, 1, 0)]])
def test_growth_chart_renders_with_no_or_one_month(points):
    assert_sensible_png(growth_chart_png(points, title="Nothing yet"))


def test_growth_plan_orders_months_keeps_gaps_and_draws_leaves_below_the_axis():
    plan = plan_growth(
        [
            MonthPoint("2026-04", 30, 5, 2),
            MonthPoint("2026-01", 20, 20, 0),
            MonthPoint("2026-02", 25, 6, 1),
        ]
    )
    assert plan.months == ("2026-01", "2026-02", "2026-04")
    assert plan.x == (0, 1, 3)  # March is missing and stays a gap
    assert plan.members == (20, 25, 30)
    assert plan.joins == (20, 6, 5)
    assert plan.leaves == (0, -1, -2)


@pytest.mark.parametrize(
    "bad, message",
    [
        (MonthPoint("2026-13", 1, 1, 1), "2026-01"),
        (MonthPoint("January", 1, 1, 1), "2026-01"),
        (MonthPoint("2026-01", -1, 1, 1), "members"),
        (MonthPoint("2026-01", 1, 1.5, 1), "joins"),  # type: ignore[arg-type]
    ],
)
def test_growth_plan_rejects_bad_points_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        plan_growth([bad])


def test_growth_plan_rejects_a_month_given_twice():
    with pytest.raises(ValueError, match="2026-02 appears more than once"):
        plan_growth([MonthPoint("2026-02", 1, 1, 0), MonthPoint("2026-02", 2, 1, 0)])


@pytest.mark.parametrize("span", range(1, 61))
def test_month_ticks_stay_readable_for_one_to_sixty_months(span):
    first = month_index("2025-11")
    ticks = month_ticks(first, span)
    positions = [x for x, _ in ticks]
    assert 1 <= len(ticks) <= 12
    assert positions == sorted(set(positions))
    assert all(0 <= x < span for x in positions)
    assert "\n20" in ticks[0][1]  # the first label always says which year
    steps = {b - a for a, b in zip(positions, positions[1:], strict=False)}
    assert len(steps) <= 1  # evenly spaced


def test_month_ticks_show_the_year_at_january():
    ticks = month_ticks(month_index("2025-11"), 4)
    assert [label for _, label in ticks] == ["Nov\n2025", "Dec", "Jan\n2026", "Feb"]
    assert [label for _, label in month_ticks(month_index("2026-01"), 60)][:3] == [
        "Jan\n2026",
        "Jul",
        "Jan\n2027",
    ]


# --------------------------------------------------------------------------- round network


def test_round_network_is_a_png_and_draws_each_edge_in_its_outcome_colour():
    people, last, _ = programme(40)
    plan = plan_round_network(people, last)
    expected = Counter(OUTCOME_COLOURS[e.outcome] for e in last)
    assert Counter(plan.edge_colours) == expected
    assert len(plan.segments) == len(last)
    outcome_counts = Counter(e.outcome for e in last)
    assert [entry.label for entry in plan.edge_legend] == [
        f"met ({outcome_counts['met']})",
        f"did not meet ({outcome_counts['missed']})",
        f"did not confirm ({outcome_counts['no_reply']})",
    ]
    # The seeds' convention: both kinds of pair that did not meet are red, told apart by the line.
    styles = {
        e.outcome: (colour, style)
        for e, colour, style in zip(last, plan.edge_colours, plan.edge_styles, strict=True)
    }
    assert styles["missed"][0] == styles["no_reply"][0] == "#d62728"
    assert styles["missed"][1] == "solid" and styles["no_reply"][1] != "solid"
    assert_sensible_png(round_network_png(people, last, title="Round 3"))


def test_round_network_lays_groups_out_met_first_then_missed_then_no_reply():
    people, last, _ = programme(300)
    plan = plan_round_network(people, last, seed=3)
    pairs_only = Counter(m for e in last for m in (e.a, e.b))
    rank = {OUTCOME_COLOURS[o]: i for i, o in enumerate(("met", "missed", "no_reply"))}
    by_reading_order = sorted(
        (
            (-(a[1] + b[1]) / 2, (a[0] + b[0]) / 2, rank[colour])
            for (a, b), colour, edge in zip(plan.segments, plan.edge_colours, last, strict=True)
            if pairs_only[edge.a] == 1 and pairs_only[edge.b] == 1
        ),
    )
    ranks = [r for _, _, r in by_reading_order]
    assert ranks == sorted(ranks)


def test_round_network_places_every_person_apart_and_each_group_in_its_own_cell():
    people, last, _ = programme(101)  # odd: one triple
    plan = plan_round_network(people, last)
    positions = dict(zip(plan.node_ids, plan.positions, strict=True))
    assert set(positions) == {p.id for p in people}
    assert len(set(plan.positions)) == len(people)
    for edge in last:  # partners are close, much closer than a cell
        assert math.dist(positions[edge.a], positions[edge.b]) < 1.0


def test_round_network_names_everyone_in_small_programmes_and_only_red_pairs_in_large_ones():
    small, small_edges, _ = programme(LABEL_LIMIT)
    big, big_edges, _ = programme(LABEL_LIMIT + 2)
    assert all(plan_round_network(small, small_edges).labels)
    plan = plan_round_network(big, big_edges)
    in_red = {m for e in big_edges if e.outcome in ("missed", "no_reply") for m in (e.a, e.b)}
    named = {node for node, label in zip(plan.node_ids, plan.labels, strict=True) if label}
    assert in_red and named == in_red


@pytest.mark.parametrize(
    "nodes, edges",
    [
        ([], []),
        ([Node("a", "Ana", "Acme")], []),
        ([Node("a", "", "")], []),
    ],
)
def test_round_network_renders_with_nobody_or_one_person(nodes, edges):
    assert_sensible_png(round_network_png(nodes, edges, title="Round 1"))


def test_round_network_pixels_show_only_the_outcomes_present():
    nodes = [Node(x, x.upper(), "Acme") for x in "abcd"]
    missed_only = round_network_png(
        nodes, [Edge("a", "b", "missed"), Edge("c", "d", "missed")], title="All missed"
    )
    met_only = round_network_png(nodes, [Edge("a", "b", "met"), Edge("c", "d", "met")], title="All met")
    assert colour_pixels(missed_only)["red"] > 200 and colour_pixels(missed_only)["green"] == 0
    assert colour_pixels(met_only)["green"] > 200 and colour_pixels(met_only)["red"] == 0


def test_round_network_rejects_an_unknown_outcome():
    with pytest.raises(ValueError, match="'maybe'"):
        plan_round_network([Node("a", "A", "X"), Node("b", "B", "Y")], [Edge("a", "b", "maybe")])


def test_round_network_draws_edges_to_people_it_was_not_told_about_and_drops_self_loops():
    plan = plan_round_network([Node("a", "Ana", "Acme")], [Edge("a", "ghost", "met"), Edge("a", "a", "met")])
    assert plan.node_ids == ("a", "ghost")
    assert plan.labels == ("Ana", "")
    assert len(plan.segments) == 1


def test_same_input_and_seed_give_the_same_png_and_another_seed_another_layout():
    people, last, met = programme(200)
    assert round_network_png(people, last, title="R", seed=4) == round_network_png(
        people, last, title="R", seed=4
    )
    assert met_network_png(people, met, title="M", seed=4) == met_network_png(people, met, title="M", seed=4)
    growth = [MonthPoint("2026-01", 5, 5, 0), MonthPoint("2026-02", 7, 3, 1)]
    assert growth_chart_png(growth, title="G") == growth_chart_png(growth, title="G")
    assert plan_met_network(people, met, seed=4) != plan_met_network(people, met, seed=5)
    assert plan_round_network(people, last, seed=4) != plan_round_network(people, last, seed=5)


# --------------------------------------------------------------------------- organisations


def test_org_legend_shows_the_ten_largest_organisations_and_the_rest_in_grey():
    people = [Node(f"p{i}", "", f"Org {i % 25}") for i in range(25 * 4)]
    people += [Node(f"q{i}", "", "Big") for i in range(30)] + [Node("x", "", "")]
    plan = plan_round_network(people, [])
    assert len(plan.org_legend) == 11
    assert plan.org_legend[0].label == "Big (30)"
    assert plan.org_legend[-1].colour == OTHER_COLOUR
    assert plan.org_legend[-1].label == "16 other organisations (65)"
    coloured = [p for p, c in zip(plan.node_ids, plan.node_colours, strict=True) if c != OTHER_COLOUR]
    assert len(coloured) == 30 + 9 * 4
    assert not set(ORG_PALETTE) & set(OUTCOME_COLOURS.values())


def test_people_without_organisation_are_grey_and_named_as_such():
    plan = plan_met_network([Node("a", "A", "Acme"), Node("b", "B", " ")], [("a", "b", 1)])
    assert plan.node_colours == (ORG_PALETTE[0], OTHER_COLOUR)
    assert plan.org_legend[-1].label == "organisation not given (1)"


# --------------------------------------------------------------------------- met network


def test_met_network_draws_each_pair_once_and_merges_repeats():
    nodes = [Node(x, x, "Acme" if x < "c" else "Beta") for x in "abcd"]
    plan = plan_met_network(
        nodes, [("a", "b", 1), ("b", "a", 1), ("c", "d", 1), ("a", "c", 0), ("d", "d", 2)]
    )
    assert len(plan.segments) == 2
    assert set(plan.edge_colours) == {MET_EDGE_COLOUR}
    assert [entry.label for entry in plan.edge_legend] == ["once (1)", "more than once (1)"]
    widths = sorted(plan.edge_widths)
    assert widths[1] > widths[0]  # the repeated pair is drawn thicker


def test_met_network_rejects_a_non_integer_count():
    with pytest.raises(ValueError, match="whole number"):
        plan_met_network([], [("a", "b", "twice")])  # type: ignore[list-item]


def test_small_met_network_puts_named_people_on_a_circle_grouped_by_organisation():
    people, _, met = programme(20, orgs=4)
    plan = plan_met_network(people, met)
    assert all(plan.labels)
    for (x, y), (dx, dy) in zip(plan.positions, plan.label_directions, strict=True):
        assert math.isclose(math.hypot(x, y), 1.0)
        assert math.isclose(dx, x) and math.isclose(dy, y)  # names point outwards
    # Walking round the circle, each organisation's colour is one unbroken run.
    order = sorted(
        zip(plan.positions, plan.node_colours, strict=True),
        key=lambda item: (math.pi / 2 - math.atan2(item[0][1], item[0][0])) % (2 * math.pi),
    )
    runs = [c for i, (_, c) in enumerate(order) if i == 0 or order[i - 1][1] != c]
    assert len(runs) == len(set(plan.node_colours))


def test_large_met_network_clusters_people_by_organisation():
    people, _, met = programme(600, rounds=6)
    plan = plan_met_network(people, met, seed=2)
    assert not any(plan.labels)
    members: dict[str, list[tuple[float, float]]] = {}
    for colour, pos in zip(plan.node_colours, plan.positions, strict=True):
        members.setdefault(colour, []).append(pos)
    assert len(members) == 11  # ten legend colours and grey
    discs = []
    for positions in members.values():
        centre = (
            sum(x for x, _ in positions) / len(positions),
            sum(y for _, y in positions) / len(positions),
        )
        discs.append((centre, max(math.dist(centre, p) for p in positions)))
    for i, (centre_i, radius_i) in enumerate(discs):  # organisations do not overlap
        for centre_j, radius_j in discs[i + 1 :]:
            assert math.dist(centre_i, centre_j) > radius_i + radius_j
    assert len(plan.segments) == len(met)


@pytest.mark.parametrize(
    "nodes, edges",
    [
        ([], []),
        ([Node("a", "Ana", "Acme")], []),
        ([Node("a", "$ally_", "$x$ Corp")], [("a", "b", 1)]),
    ],
)
def test_met_network_renders_with_nobody_one_person_or_awkward_names(nodes, edges):
    assert_sensible_png(met_network_png(nodes, edges, title="Met $so far$"))


# --------------------------------------------------------------------------- scale and isolation


def test_two_thousand_members_render_in_a_few_seconds_each():
    people, last, met = programme(2000)
    months = [MonthPoint(f"{2026 + m // 12}-{m % 12 + 1:02d}", 1000 + 80 * m, 90, 10) for m in range(12)]
    for render in (
        lambda: growth_chart_png(months, title="Growth"),
        lambda: round_network_png(people, last, title="Round 12"),
        lambda: met_network_png(people, met, title="Met so far"),
    ):
        started = time.perf_counter()
        assert_sensible_png(render())
        assert time.perf_counter() - started < 5.0


def test_rendering_leaves_pyplot_and_the_backend_alone():
    script = (
        "import matplotlib, sys\n"
        # Reading rcParams['backend'] would itself resolve the backend through pyplot.
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "from mailer.charts import Node, Edge, round_network_png\n"
        "round_network_png([Node('a','A','X'), Node('b','B','Y')], [Edge('a','b','met')],"
        " title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_disputed_group_is_drawn_amber_and_named_in_the_legend_only_when_present():
    nodes = [Node(x, x.upper(), "Acme") for x in "abcd"]
    plan = plan_round_network(nodes, [Edge("a", "b", "disputed"), Edge("c", "d", "met")])
    assert set(plan.edge_colours) == {OUTCOME_COLOURS["disputed"], OUTCOME_COLOURS["met"]}
    assert [e.label for e in plan.edge_legend] == [
        "met (1)",
        "disputed (1)",
        "did not meet (0)",
        "did not confirm (0)",
    ]
    assert OUTCOME_COLOURS["disputed"] not in ORG_PALETTE
    without = plan_round_network(nodes, [Edge("a", "b", "met")])
    assert "disputed" not in " ".join(e.label for e in without.edge_legend)


# --------------------------------------------------------------------------- one email, many sizes


def test_an_organisation_keeps_its_colour_in_every_picture_of_an_email():
    people, last, met = programme(40)
    colours = organisation_colours(p.org for p in people)
    some = {p.id for p in people[:20]}
    round_edges = [e for e in last if e.a in some and e.b in some]
    round_plan = plan_round_network(people[:20], round_edges, org_colours=colours)
    met_plan = plan_met_network(people, met, org_colours=colours)
    org_of = {p.id: p.org for p in people}
    for plan in (round_plan, met_plan):
        for node, colour in zip(plan.node_ids, plan.node_colours, strict=True):
            assert colour == colours.get(org_of[node], OTHER_COLOUR)


def test_above_the_label_limit_who_met_whom_is_an_organisation_mixing_matrix():
    people, _, met = programme(LABEL_LIMIT + 40, rounds=3)
    lonely = Node("alone", "Al", "Org 0", full_name="Al Lone")
    plan = plan_mixing([*people, lonely], met)
    total = sum(n for _, _, n in met)
    # Each conversation is in one cell (two mirrored cells when it crossed organisations).
    upper = sum(plan.counts[i][j] for i in range(len(plan.orgs)) for j in range(i, len(plan.orgs)))
    assert upper == total
    assert all(
        plan.counts[i][j] == plan.counts[j][i] for i in range(len(plan.orgs)) for j in range(len(plan.orgs))
    )
    assert "Al Lone" in plan.never_met and plan.never_met_count >= 1
    org = {p.id: p.org for p in people}
    across = sum(n for a, b, n in met if org[a] != org[b])
    assert plan.across_share == pytest.approx(across / total)
    assert_sensible_png(met_network_png([*people, lonely], met, title="Who met whom"))


def test_the_growth_chart_carries_conversations_met_rates_and_schedule_changes():
    points = [MonthPoint(f"2026-{m:02d}", 10 + m, 1, 0) for m in range(1, 7)]
    rounds = [
        RoundPoint("2026-01", 5, 4, ""),  # kept no schedule: no mark where it starts to
        RoundPoint("2026-02", 5, 4, "monthly, meeting week 1"),
        RoundPoint("2026-03", 6, 3, "monthly, meeting week 1"),
        RoundPoint("2026-05", 6, 6, "every 2 months, meeting week 1"),
    ]
    plan = plan_growth(points, rounds)
    assert plan.round_x == (0, 1, 2, 4) and plan.conversations == (4, 4, 3, 6)
    assert plan.met_rates == (80.0, 80.0, 50.0, 100.0)
    assert plan.changes == ((4, "every 2 months, meeting week 1"),)
    assert_sensible_png(growth_chart_png(points, title="Growth", rounds=rounds))
