"""Who meets whom in a round: groups of two (one of three for an odd count) and their hosts.

Pure: no store, no I/O, no clock. The same (people, history, seed) always gives the same
pairing, whatever the order of `people`.

Priorities, strictly lexicographic (see matcher/pairing_cost.py for how they are weighed):
1. fewest repeated pairings (two people ever in a group together; a triple counts 3 pairings),
2. fewest same-organisation pairings (an empty organisation never matches),
3. a fair triple: nobody in it again while someone in the same position has been in fewer,
4. among repeats, pairs who met longest ago.
Hosts rotate: a group's host is the member who hosted least recently (never first), ties by seed.

People's wishes come on top: a pair someone asked never to be grouped with is a hard constraint
(priced above everything else, and when no arrangement avoids it someone sits out), and a group
whose members all asked to meet again is formed again as it was, not counted as a repeat.

Small programmes are solved exactly (blossom, plus branch and bound for the triple); large ones
by random start, improving swaps and exact repair of what stays costly (matcher/pairing_local.py),
which is exact whenever it reaches zero cost, as sparse histories do.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
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
    # Nobody to group them with: a lone person, or someone every possible group of whom would
    # hold a pair that asked never to be grouped together.
    unpaired: list[str]
    repeats: int  # repeated pairings not asked for (a triple counts as 3 pairings)
    same_org: int  # same-organisation pairings (triple: pairs inside it)
    again: int = 0  # groups formed again because all their members asked


def make_pairing(
    people: Sequence[Person],
    history: Sequence[PastGroup],
    seed: int,
    *,
    never: Iterable[tuple[str, str]] = (),
    again: Iterable[Collection[str]] = (),
) -> Pairing:
    """Group `people` for a round, given every past group, deterministically for `seed`.

    never: pairs of ids never to be grouped together (ids not among `people` are ignored). No
    returned group holds such a pair: when the solvers cannot avoid one, someone from the groups
    holding it sits out (``unpaired``), the person with most such pairs first, ties by seed.
    again: groups of ids whose members all asked to meet again. Each is formed again as it is when
    all its members are here, none is in an earlier listed such group and it holds no never pair;
    these repeats were asked for, so they count in ``again``, not in ``repeats``.

    Raises ValueError for malformed input (duplicate or non-string ids, bad history entries).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    orgs = _organisations(people)
    forbidden = _never_pairs(never, orgs)
    fixed = _again_groups(again, orgs, forbidden)
    in_fixed = {person for group in fixed for person in group}
    model = build_cost_model(orgs, history, forbidden)
    rng = Random(seed)
    pool = [person for person in sorted(orgs) if person not in in_fixed]
    unpaired: list[str] = []
    while True:
        member_lists = _arrange(pool, model, rng)
        offending = sorted(
            {person for group in member_lists if _holds_never(group, model) for person in group}
        )
        if not offending:
            break
        # Whoever has most never pairs among the others is the hardest to place: they sit out.
        constrained = {p: sum(model.is_never(p, q) for q in pool) for p in offending}
        most = max(constrained.values())
        out = Random(f"{seed}/out/{len(unpaired)}").choice([p for p in offending if constrained[p] == most])
        unpaired.append(out)
        pool = [person for person in pool if person != out]
    if len(pool) == 1:
        joined = _join_again_pair(pool[0], fixed, model)
        if joined is None:
            unpaired.append(pool[0])
    groups = _with_hosts(member_lists + fixed, model, Random(f"{seed}/hosts"))
    asked = {frozenset(pair) for group in fixed for pair in combinations(group, 2)}
    repeats, same_org = _count_conflicts(groups, model, asked)
    return Pairing(
        groups=groups, unpaired=sorted(unpaired), repeats=repeats, same_org=same_org, again=len(fixed)
    )


def _arrange(pool: list[str], model: CostModel, rng: Random) -> list[list[str]]:
    """Groups of everyone in `pool` (sorted ids) at least cost; none for fewer than two people."""
    if len(pool) < 2:
        return []
    order = list(pool)
    rng.shuffle(order)
    if len(order) <= 3:
        return [order]
    small = len(order) <= EXACT_LIMIT
    member_lists = arrange_locally(order, model, rng, repair=not small)
    if small and total_cost(member_lists, model) > 0:
        member_lists = _solve_whole_exactly(order, model)
    return member_lists


def _holds_never(group: Sequence[str], model: CostModel) -> bool:
    return any(model.is_never(a, b) for a, b in combinations(group, 2))


def _never_pairs(never: Iterable[tuple[str, str]], orgs: dict[str, str]) -> frozenset[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for entry in never:
        try:
            a, b = entry
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a never pair must be two ids, got {entry!r}") from exc
        if a in orgs and b in orgs and a != b:
            pairs.update(((a, b), (b, a)))
    return frozenset(pairs)


def _again_groups(
    again: Iterable[Collection[str]], orgs: dict[str, str], forbidden: frozenset[tuple[str, str]]
) -> list[list[str]]:
    formed: list[list[str]] = []
    taken: set[str] = set()
    for members in again:
        group = sorted(set(members))
        if len(group) < 2 or any(m not in orgs or m in taken for m in group):
            continue
        if any((a, b) in forbidden for a, b in combinations(group, 2)):
            continue
        formed.append(group)
        taken.update(group)
    return formed


def _join_again_pair(person: str, fixed: list[list[str]], model: CostModel) -> list[str] | None:
    """The one person left over joins the cheapest pair meeting again, rather than sit out."""
    pairs = [group for group in fixed if len(group) == 2 and not _holds_never([*group, person], model)]
    if not pairs:
        return None
    chosen = min(pairs, key=lambda group: (model.group_cost([*group, person]), group))
    chosen.append(person)
    return chosen


def _count_conflicts(groups: list[Group], model: CostModel, asked: set[frozenset[str]]) -> tuple[int, int]:
    """(repeated pairings not asked for, same-organisation pairings), recounted from the groups."""
    met, org = model.met, model.org
    repeats = same_org = 0
    for group in groups:
        for a, b in combinations(group.members, 2):
            if ((a, b) in met or (b, a) in met) and frozenset((a, b)) not in asked:
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
