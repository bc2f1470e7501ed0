"""Who meets whom in a round: groups of two (one of three for an odd count) and their hosts.

Pure: no store, no I/O, no clock. The same (people, history, seed) always gives the same
pairing, whatever the order of `people`.

Priorities, strictly lexicographic (see matcher/pairing_cost.py for how they are weighed):
1. fewest repeated pairings (two people ever in a group together; a triple counts 3 pairings),
2. fewest same-organisation pairings (an empty organisation never matches),
3. among repeats, pairs who met longest ago,
4. nobody in the triple twice in a row while avoidable.
Hosts rotate: a group's host is the member who hosted least recently (never first), ties by seed.

Small programmes are solved exactly (blossom, plus branch and bound for the triple); large ones
by random start, improving swaps and exact repair of what stays costly (matcher/pairing_local.py),
which is exact whenever it reaches zero cost, as sparse histories do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from random import Random

import numpy as np

from matcher.pairing_cost import CostModel, build_cost_model
from matcher.pairing_exact import solve_exact
from matcher.pairing_local import arrange_locally, total_cost

# Up to this many people a costly arrangement is re-solved exactly on the whole programme;
# beyond it the exact repair works on neighbourhoods (blossom is cubic).
EXACT_LIMIT = 120

_NEVER_HOSTED = -(2**62)


@dataclass(frozen=True)
class Person:
    id: str
    org: str  # "" = unknown organisation: never counts as same-org


@dataclass(frozen=True)
class PastGroup:
    round: int  # ordinal; larger = more recent
    members: tuple[str, ...]
    host: str | None = None


@dataclass(frozen=True)
class Group:
    members: tuple[str, ...]  # 2, or 3 for the single triple
    host: str


@dataclass(frozen=True)
class Pairing:
    groups: list[Group]
    unpaired: list[str]  # only ever non-empty with exactly 1 person
    repeats: int  # repeated pairings (a triple counts as 3 pairings)
    same_org: int  # same-organisation pairings (triple: pairs inside it)


def make_pairing(people: Sequence[Person], history: Sequence[PastGroup], seed: int) -> Pairing:
    """Group `people` for a round, given every past group, deterministically for `seed`.

    Raises ValueError for malformed input (duplicate or non-string ids, bad history entries).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    orgs = _organisations(people)
    ids = sorted(orgs)
    if not ids:
        return Pairing(groups=[], unpaired=[], repeats=0, same_org=0)
    if len(ids) == 1:
        return Pairing(groups=[], unpaired=[ids[0]], repeats=0, same_org=0)

    model = build_cost_model(orgs, history)
    rng = Random(seed)
    order = list(ids)
    rng.shuffle(order)
    if len(order) <= 3:
        member_lists = [order]
    else:
        small = len(order) <= EXACT_LIMIT
        member_lists = arrange_locally(order, model, rng, repair=not small)
        if small and total_cost(member_lists, model) > 0:
            member_lists = _solve_whole_exactly(order, model)

    groups = _with_hosts(member_lists, model, Random(f"{seed}/hosts"))
    repeats, same_org = _count_conflicts(groups, model)
    return Pairing(groups=groups, unpaired=[], repeats=repeats, same_org=same_org)


def _count_conflicts(groups: list[Group], model: CostModel) -> tuple[int, int]:
    """(repeated pairings, same-organisation pairings), recounted from the groups."""
    met, org = model.met, model.org
    repeats = same_org = 0
    for group in groups:
        for a, b in combinations(group.members, 2):
            if (a, b) in met or (b, a) in met:
                repeats += 1
            if org[a] and org[a] == org[b]:
                same_org += 1
    return repeats, same_org


def _organisations(people: Sequence[Person]) -> dict[str, str]:
    try:
        orgs = {person.id: person.org for person in people}
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"people must be a sequence of Person: {exc}") from exc
    if not (set(map(type, orgs)) <= {str} and set(map(type, orgs.values())) <= {str}):
        position = next(i for i, p in enumerate(people) if type(p.id) is not str or type(p.org) is not str)
        raise ValueError(f"people[{position}] needs a string id and a string org")
    if len(orgs) != len(people):
        seen: set[str] = set()
        for position, person in enumerate(people):
            if person.id in seen:
                raise ValueError(f"people[{position}] repeats the id {person.id!r}")
            seen.add(person.id)
    return orgs


def _solve_whole_exactly(order: list[str], model: CostModel) -> list[list[str]]:
    size = len(order)
    matrix = np.zeros((size, size), dtype=np.int64)
    for x, y in combinations(range(size), 2):
        matrix[x, y] = matrix[y, x] = model.pair_cost(order[x], order[y])
    extra = np.array([model.triple_extra(p) for p in order], dtype=np.int64)
    _, solved = solve_exact(matrix, extra)
    return [[order[v] for v in group] for group in solved]


def _with_hosts(member_lists: list[list[str]], model: CostModel, rng: Random) -> list[Group]:
    """Members sorted; each host the member who hosted least recently (never: first)."""
    # The groups' order is already a function of the sorted ids and the seed only.
    canonical = [(m[0], m[1]) if len(m) == 2 and m[0] < m[1] else tuple(sorted(m)) for m in member_lists]
    hosted = model.last_hosted.get
    never = _NEVER_HOSTED
    groups = []
    for members in canonical:
        if len(members) == 2:
            a, b = members
            first, second = hosted(a, never), hosted(b, never)
            if first != second:
                host = a if first < second else b
            else:
                host = a if rng.random() < 0.5 else b
        else:
            rounds = [hosted(m, never) for m in members]
            earliest = min(rounds)
            candidates = [m for m, r in zip(members, rounds, strict=True) if r == earliest]
            host = candidates[0] if len(candidates) == 1 else rng.choice(candidates)
        groups.append(Group(members=members, host=host))
    return groups
