"""Near-linear pairing for large programmes: random start, improving swaps, exact repair.

Repeats and same-organisation pairs are sparse constraints in a large programme (a person has
a few dozen past partners and colleagues among thousands), so a random arrangement has few
costly groups. Each costly group is recombined with randomly chosen other groups while that
strictly lowers the total cost; whatever stays costly is then re-solved exactly together with a
neighbourhood of other groups. Every step only accepts improvements, and an arrangement whose
every group costs nothing is optimal.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from random import Random

import numpy as np

from matcher.pairing_cost import CostModel
from matcher.pairing_exact import solve_exact

_SWAP_TRIES_PER_GROUP = 12
_TRIPLE_SCAN = 64
_LARGE_ORGANISATION_SHARE = 8  # an organisation with over 1/8 of everyone is large
_SWAP_BUDGET_PER_PERSON = 6
_REPAIR_PEOPLE = 40
_REPAIR_ROUNDS = 40
_REPAIR_STALE_ROUNDS = 4


def arrange_locally(
    people_in_order: list[str], model: CostModel, rng: Random, *, repair: bool = True
) -> list[list[str]]:
    """Groups for `people_in_order` (already shuffled by the caller's seed), at least 2 people.

    repair=False stops after the swaps, for callers that solve the whole programme exactly
    when the swaps leave anything costly.
    """
    groups = _initial_groups(people_in_order, model)
    costs = _initial_costs(groups, model)
    _improve_by_swaps(groups, costs, model, rng)
    if repair:
        _repair_exactly(groups, costs, model, rng)
    return groups


def total_cost(groups: list[list[str]], model: CostModel) -> int:
    return sum(model.group_cost(g) for g in groups)


def _initial_groups(order: list[str], model: CostModel) -> list[list[str]]:
    """Consecutive pairs of the shuffled order, plus a triple of fresh people for odd counts.

    When one organisation is large, random pairs would put many colleagues together and the
    swaps would have to find the rare cure for each, so the start interleaves organisations
    instead (still random within and across them).
    """
    triple: list[str] = []
    if len(order) % 2:
        triple = _pick_triple(order, model)
        chosen = set(triple)
        order = [p for p in order if p not in chosen]
    org = model.org
    sizes = Counter(org[p] for p in order if org[p])
    if sizes and max(sizes.values()) * _LARGE_ORGANISATION_SHARE > len(order):
        order = _interleaved(order, org)
        half = len(order) // 2
        groups = [[order[i], order[i + half]] for i in range(half)]
    else:
        groups = [[order[i], order[i + 1]] for i in range(0, len(order), 2)]
    if triple:
        groups.append(triple)
    return groups


def _pick_triple(order: list[str], model: CostModel) -> list[str]:
    """Three people from the end of the order, among those in fewest triples, avoiding conflicts.

    Looks at a bounded number of candidates; whatever conflict remains is the swaps' job.
    """
    fresh = [p for p in reversed(order[-_TRIPLE_SCAN:]) if model.triple_extra(p) == 0]
    picked: list[str] = []
    for person in fresh:
        if all(model.pair_cost(person, other) == 0 for other in picked):
            picked.append(person)
            if len(picked) == 3:
                return picked
    for person in reversed(order):
        if person not in picked:
            picked.append(person)
            if len(picked) == 3:
                break
    return picked


def _interleaved(order: list[str], org: dict[str, str]) -> list[str]:
    """Everyone grouped by organisation (in order of first appearance), the unknowns last.

    Pairing position i with position i + n/2 then only puts colleagues together when one
    organisation has more than half of the people.
    """
    by_org: dict[str, list[str]] = {}
    unknown = []
    for person in order:
        if org[person]:
            by_org.setdefault(org[person], []).append(person)
        else:
            unknown.append(person)
    return [p for members in by_org.values() for p in members] + unknown


def _initial_costs(groups: list[list[str]], model: CostModel) -> list[int]:
    """Group costs, with the common conflict-free pair priced by two set lookups only."""
    met, org, never, pair_cost = model.met, model.org, model.never, model.pair_cost
    costs = [
        pair_cost(a, b)
        if (a, b) in met or (b, a) in met or (org[a] and org[a] == org[b]) or (a, b) in never
        else 0
        for a, b, *_ in groups
    ]
    if len(groups[-1]) == 3:
        costs[-1] = model.group_cost(groups[-1])
    return costs


def _recombinations(first: list[str], second: list[str]) -> list[tuple[list[str], list[str]]]:
    """Other ways to split the members of two groups into groups of the same sizes."""
    if len(first) == 2 and len(second) == 2:
        a, b = first
        c, d = second
        return [([a, c], [b, d]), ([a, d], [b, c])]
    pool = [*first, *second]
    options = []
    for pair in combinations(pool, 2):
        triple = [p for p in pool if p not in pair]
        options.append((list(pair), triple))
    return options


def _improve_by_swaps(groups: list[list[str]], costs: list[int], model: CostModel, rng: Random) -> None:
    count = len(groups)
    if count < 2:
        return
    queue = [i for i, c in enumerate(costs) if c > 0]
    budget = _SWAP_BUDGET_PER_PERSON * 2 * count
    group_cost = model.group_cost
    while queue and budget > 0:
        i = queue.pop()
        for attempt in range(_SWAP_TRIES_PER_GROUP):
            if costs[i] == 0 or budget <= 0:
                break
            # Two costly groups often cure each other (colleagues from two organisations),
            # and costly groups get rare, so half the partners come from the queue.
            if attempt % 2 and queue:
                j = queue[rng.randrange(len(queue))]
            else:
                j = rng.randrange(count)
            if j == i:
                continue
            budget -= 1
            current = costs[i] + costs[j]
            best = None
            for one, two in _recombinations(groups[i], groups[j]):
                cost_one = group_cost(one)
                if cost_one >= current:
                    continue
                cost_two = group_cost(two)
                if cost_one + cost_two < current:
                    current = cost_one + cost_two
                    best = (one, two, cost_one, cost_two)
            if best is None:
                continue
            one, two, cost_one, cost_two = best
            groups[i], groups[j], costs[i], costs[j] = one, two, cost_one, cost_two
            if cost_two > 0:
                queue.append(j)


def _repair_exactly(groups: list[list[str]], costs: list[int], model: CostModel, rng: Random) -> None:
    """Re-solve costly groups exactly together with random other groups until nothing gains."""
    stale = 0
    for _ in range(_REPAIR_ROUNDS):
        costly = [i for i, c in enumerate(costs) if c > 0]
        if not costly or stale >= _REPAIR_STALE_ROUNDS or len(groups) < 2:
            return
        chosen = _pick_neighbourhood(groups, costly, rng)
        members = [p for i in chosen for p in groups[i]]
        before = sum(costs[i] for i in chosen)
        matrix = np.zeros((len(members), len(members)), dtype=np.int64)
        for x, y in combinations(range(len(members)), 2):
            matrix[x, y] = matrix[y, x] = model.pair_cost(members[x], members[y])
        extra = np.array([model.triple_extra(p) for p in members], dtype=np.int64)
        after, solved = solve_exact(matrix, extra)
        if after >= before:
            stale += 1
            continue
        stale = 0
        for slot, group in zip(chosen, solved, strict=True):
            groups[slot] = [members[v] for v in group]
            costs[slot] = model.group_cost(groups[slot])


def _pick_neighbourhood(groups: list[list[str]], costly: list[int], rng: Random) -> list[int]:
    """Some costly groups (at most half the budget) topped up with random other groups."""
    rng.shuffle(costly)
    chosen: list[int] = []
    people = 0
    for i in costly:
        if people + len(groups[i]) > _REPAIR_PEOPLE // 2 and chosen:
            break
        chosen.append(i)
        people += len(groups[i])
    taken = set(chosen)
    wanted = min(len(groups), len(chosen) + _REPAIR_PEOPLE // 2)
    others = [i for i in rng.sample(range(len(groups)), wanted) if i not in taken]
    for i in others:
        if people >= _REPAIR_PEOPLE:
            break
        chosen.append(i)
        people += len(groups[i])
    return chosen
