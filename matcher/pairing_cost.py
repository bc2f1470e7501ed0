"""The cost model of a pairing: what a group costs, derived from past rounds.

A solution is ranked by the tuple (never, repeats, same_org, triple_share, recency), strictly
lexicographically; "never" counts the pairs someone asked never to be grouped with, so the solvers
avoid them first and matcher/pairing.py has someone sit out when they cannot. Every term is a small
non-negative count, so the tuple is folded into one integer with multipliers larger than the largest
possible sum of the lower terms; an exact minimum of that integer is then the lexicographic optimum,
and blossom (which needs integer weights to stay exact) can work on it directly.

"triple_share" keeps the triple fair: each person present is ranked by how many triples they have
been in (0 = fewest), and a triple member of rank r > 0 costs 4 ** (r - 1). One person a rank
higher then costs more than three people a rank lower, so nobody is put in the triple again while
someone in the same position (no worse on the higher terms) has been in fewer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
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
    triple_share: int


# Ranks above this cost the same: 4 ** (_TRIPLE_RANKS - 1) is the largest triple_share term.
_TRIPLE_RANKS = 3
_MAX_TRIPLE_SHARE = 3 * 4 ** (_TRIPLE_RANKS - 1)


def weights_for(people_count: int, distinct_rounds: int) -> Weights:
    """Multipliers that make the folded integer cost exactly lexicographic.

    With n people there are at most n//2 + 2 pairings (a triple counts 3), each recency term is
    at most `distinct_rounds`, and the triple_share terms of one triple sum to at most
    _MAX_TRIPLE_SHARE.
    """
    pairings = people_count // 2 + 2
    recency = 1
    triple_share = recency * (pairings * max(distinct_rounds, 1) + 1)
    same_org = triple_share * (_MAX_TRIPLE_SHARE + 1)
    repeat = same_org * (pairings + 1)
    never = repeat * (pairings + 1)
    return Weights(never=never, repeat=repeat, same_org=same_org, recency=recency, triple_share=triple_share)


@dataclass
class CostModel:
    """Everything the solvers need to price a group, looked up by person id."""

    org: dict[str, str]
    # (a, b) as listed in a past group -> last round of that group; either order may be present,
    # and the keys include whole triples (harmless: a lookup is always of two people).
    met: dict[tuple[str, ...], int]
    recency_rank: dict[int, int]  # past round -> 1 (oldest) .. number of rounds
    # person -> 4 ** (rank - 1) for rank > 0 by triples been in among the people present (module doc)
    triple_share: dict[str, int]
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
        return self.weights.triple_share * self.triple_share.get(person, 0)

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
    triple_share = _triple_shares(orgs, members, triples)

    recency_rank = {rnd: rank for rank, rnd in enumerate(sorted(set(rounds)), start=1)}
    return CostModel(
        org=orgs,
        met=met,
        recency_rank=recency_rank,
        triple_share=triple_share,
        last_hosted=last_hosted,  # type: ignore[arg-type]
        weights=weights_for(len(orgs), len(recency_rank)),
        never=never,
    )


def _triple_shares(
    orgs: dict[str, str], members: list[tuple[str, ...]], triples: list[int]
) -> dict[str, int]:
    """The triple_share term of each person present who has been in more triples than the fewest."""
    counts = Counter(person for position in triples for person in members[position] if person in orgs)
    if not counts:
        return {}
    levels = sorted({counts.get(person, 0) for person in orgs})
    rank = {count: min(index, _TRIPLE_RANKS) for index, count in enumerate(levels)}
    return {person: 4 ** (rank[count] - 1) for person, count in counts.items() if rank[count] > 0}
