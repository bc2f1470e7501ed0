"""The cost model of a pairing: what a group costs, derived from past rounds.

A solution is ranked by the tuple (never, repeats, same_org, recency, triple_again), strictly
lexicographically; "never" counts the pairs someone asked never to be grouped with, so the solvers
avoid them first and matcher/pairing.py has someone sit out when they cannot. Every term is a small
non-negative count, so the tuple is folded into one integer with multipliers larger than the largest
possible sum of the lower terms; an exact minimum of that integer is then the lexicographic optimum,
and blossom (which needs integer weights to stay exact) can work on it directly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, combinations
from typing import Protocol

_NEVER = -(2**62)


class _PastGroupLike(Protocol):
    round: int
    members: tuple[str, ...]
    host: str | None


@dataclass(frozen=True)
class Weights:
    never: int
    repeat: int
    same_org: int
    recency: int
    triple_again: int


def weights_for(people_count: int, distinct_rounds: int) -> Weights:
    """Multipliers that make the folded integer cost exactly lexicographic.

    With n people there are at most n//2 + 2 pairings (a triple counts 3), each recency term is
    at most `distinct_rounds`, and at most 3 people can be "in a triple again".
    """
    pairings = people_count // 2 + 2
    triple_again = 1
    recency = 4 * triple_again
    same_org = recency * (pairings * max(distinct_rounds, 1) + 1)
    repeat = same_org * (pairings + 1)
    never = repeat * (pairings + 1)
    return Weights(never=never, repeat=repeat, same_org=same_org, recency=recency, triple_again=triple_again)


@dataclass
class CostModel:
    """Everything the solvers need to price a group, looked up by person id."""

    org: dict[str, str]
    # (a, b) as listed in a past group -> last round of that group; either order may be present,
    # and the keys include whole triples (harmless: a lookup is always of two people).
    met: dict[tuple[str, ...], int]
    recency_rank: dict[int, int]  # past round -> 1 (oldest) .. number of rounds
    recent_triple: frozenset[str]  # people whose latest round put them in a triple
    last_hosted: dict[str, int]  # person -> latest round they hosted
    weights: Weights
    # Pairs someone asked never to be grouped with, in both orders (a hard constraint).
    never: frozenset[tuple[str, str]] = frozenset()

    def last_met(self, a: str, b: str) -> int | None:
        forward = self.met.get((a, b))
        backward = self.met.get((b, a))
        if forward is None:
            return backward
        return forward if backward is None or backward < forward else backward

    def pair_cost(self, a: str, b: str) -> int:
        cost = self.weights.never if (a, b) in self.never else 0
        last = self.last_met(a, b)
        if last is not None:
            cost += self.weights.repeat + self.weights.recency * self.recency_rank[last]
        org = self.org[a]
        if org and org == self.org[b]:
            cost += self.weights.same_org
        return cost

    def triple_extra(self, person: str) -> int:
        return self.weights.triple_again if person in self.recent_triple else 0

    def group_cost(self, members: Sequence[str]) -> int:
        if len(members) == 2:
            return self.pair_cost(members[0], members[1])
        total = sum(self.pair_cost(a, b) for a, b in combinations(members, 2))
        return total + sum(self.triple_extra(p) for p in members)

    def is_repeat(self, a: str, b: str) -> bool:
        return (a, b) in self.met or (b, a) in self.met

    def is_never(self, a: str, b: str) -> bool:
        return (a, b) in self.never

    def is_same_org(self, a: str, b: str) -> bool:
        org = self.org[a]
        return bool(org) and org == self.org[b]


def build_cost_model(
    orgs: dict[str, str],
    history: Sequence[_PastGroupLike],
    never: frozenset[tuple[str, str]] = frozenset(),
) -> CostModel:
    """Index the history once: last meeting per pair, hosting, who was last in a triple.

    This is the hot path for large programmes (hundreds of thousands of past groups): the work
    is done by dict/zip/chain over columns in round order (so the latest entry wins), without
    building a key per pair. Member ids that are not strings simply match nobody.
    """
    try:
        rounds = [group.round for group in history]
        members = [group.members for group in history]
        hosts = [group.host for group in history]
        sizes = list(map(len, members))
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"history must be a sequence of past groups: {exc}") from exc
    if not set(map(type, rounds)) <= {int}:
        position = next(i for i, r in enumerate(rounds) if type(r) is not int)
        raise ValueError(f"history entry #{position} has a non-integer round")
    if not set(map(type, members)) <= {tuple}:
        members = [tuple(group) for group in members]
    if rounds != sorted(rounds):
        order = sorted(range(len(rounds)), key=rounds.__getitem__)
        rounds = [rounds[i] for i in order]
        members = [members[i] for i in order]
        hosts = [hosts[i] for i in order]
        sizes = [sizes[i] for i in order]
    try:
        met: dict[tuple[str, ...], int] = dict(zip(members, rounds, strict=True))
        last_hosted = dict(zip(hosts, rounds, strict=True))
    except TypeError as exc:
        raise ValueError(f"history has a member or host that is not an id: {exc}") from exc
    last_hosted.pop(None, None)  # type: ignore[call-overload]

    triples = [i for i, size in enumerate(sizes) if size > 2]
    for position in triples:
        rnd = rounds[position]
        for a, b in combinations(members[position], 2):
            if met.get((a, b), _NEVER) < rnd:
                met[(a, b)] = rnd
    recent_triple = _last_in_triple(rounds, members, triples)

    recency_rank = {rnd: rank for rank, rnd in enumerate(sorted(set(rounds)), start=1)}
    return CostModel(
        org=orgs,
        met=met,
        recency_rank=recency_rank,
        recent_triple=recent_triple,
        last_hosted=last_hosted,  # type: ignore[arg-type]
        weights=weights_for(len(orgs), len(recency_rank)),
        never=never,
    )


def _last_in_triple(rounds: list[int], members: list[tuple[str, ...]], triples: list[int]) -> frozenset[str]:
    """People whose latest round (rounds sorted ascending) put them in a group of 3 or more.

    Scans the history once from the end, testing every member against the small set of
    triple members only, so no per-person index is built.
    """
    candidates = {person for position in triples for person in members[position]}
    if not candidates:
        return frozenset()
    found: set[str] = set()
    seen_later: set[str] = set()
    end = len(rounds)
    pending = sorted(triples, reverse=True)
    while end > 0:
        start = bisect_left(rounds, rounds[end - 1], 0, end)
        in_round = candidates.intersection(chain.from_iterable(members[start:end]))
        for position in pending:
            if start <= position < end:
                found.update(p for p in members[position] if p not in seen_later)
        seen_later |= in_round
        end = start
    return frozenset(found)
