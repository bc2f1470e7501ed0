"""Exact min-cost partition into pairs plus, for an odd count, one triple.

Even counts are one min-cost perfect matching (networkx blossom, integer weights, so exact).

Odd counts are not a matching problem (the triple's third pair couples its members), so they
are solved by branch and bound over triples with three valid lower bounds:

* Relaxation R: add a dummy D; D-x costs h(x) = the cheapest way x could join any two others.
  Any solution with triple {x, a, b} maps to an R-matching (a-b, D-x, the rest) costing no
  more, so min R <= optimum; and a triple solution costs at least
  min R + gap_x(T) for each member x, gap_x(T) = (x's real cost of joining a, b) - h(x).
* LP duals: y from the fractional perfect matching LP (y[u] + y[v] <= 2 c(u, v)) price any
  set W at no more than its min perfect matching, so a triple solution costs at least
  c(T) + extras + (sum(y) - y(T)) / 2. One Hungarian run prices every triple.
* Per person (only when the others fail): with m_x = min perfect matching without x, the triple
  solution costs at least m_x + c(x, a) + c(x, b) + extras, because a-b plus the rest is a
  perfect matching without x.

Triples are examined in order of the larger of the first two bounds and solved exactly (one
blossom without them) only while a bound can still beat the best solution found; the first
R-based solution is usually already optimal, which the bounds then prove.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

Groups = list[tuple[int, ...]]


def min_cost_perfect_matching(nodes: Sequence[int], costs: np.ndarray) -> tuple[int, Groups]:
    """Exact min-cost perfect matching of `nodes` (even count) on the complete graph."""
    if len(nodes) % 2:
        raise ValueError(f"perfect matching needs an even number of nodes, got {len(nodes)}")
    if not nodes:
        return 0, []
    if len(nodes) == 2:
        a, b = nodes
        return int(costs[a, b]), [(a, b)]
    sub = costs[np.ix_(nodes, nodes)]
    # maxcardinality=True maximises weight among perfect matchings, so BIG - cost turns the
    # maximisation into a minimisation; positive weights keep every edge attractive.
    big = int(sub.max()) + 1
    graph = nx.Graph()
    size = len(nodes)
    rows = sub.tolist()
    graph.add_weighted_edges_from(
        (nodes[i], nodes[j], big - rows[i][j]) for i in range(size) for j in range(i + 1, size)
    )
    matching = nx.max_weight_matching(graph, maxcardinality=True)
    if 2 * len(matching) != size:
        raise RuntimeError(f"blossom returned {len(matching)} pairs for {size} nodes")
    pairs = [(a, b) if a < b else (b, a) for a, b in matching]
    pairs.sort()
    return sum(int(costs[a, b]) for a, b in pairs), pairs


def fractional_duals(costs: np.ndarray) -> np.ndarray:
    """Doubled duals y of the fractional perfect matching LP: y[a] + y[b] <= 2 * costs[a, b].

    They come from the assignment problem on the bipartite double cover (each person picks a
    partner, nobody themselves), solved by the shortest augmenting path (Hungarian) method
    with row potentials u and column potentials v; y = u + v. For any set W of people,
    sum(y[W]) / 2 is a lower bound of the min-cost perfect matching of W, which prices
    everyone left when a triple is taken out in one subtraction.
    """
    n = costs.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    cost = costs.astype(np.int64)
    forbid = int(cost.max()) * n + 1
    cost[np.diag_indices(n)] = forbid
    u = np.zeros(n + 1, dtype=np.int64)
    v = np.zeros(n + 1, dtype=np.int64)
    owner = np.zeros(n + 1, dtype=np.int64)  # column j (1-based) -> row (1-based), 0 = free
    way = np.zeros(n + 1, dtype=np.int64)
    infinite = np.iinfo(np.int64).max // 4
    for row in range(1, n + 1):
        owner[0] = row
        column = 0
        min_slack = np.full(n + 1, infinite, dtype=np.int64)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[column] = True
            current = owner[column]
            slack = cost[current - 1] - u[current] - v[1:]
            free = ~used[1:]
            better = free & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = column
            candidates = np.where(free, min_slack[1:], infinite)
            nxt = int(np.argmin(candidates)) + 1
            delta = candidates[nxt - 1]
            u[owner[used]] += delta
            v[used] -= delta
            min_slack[~used] -= delta
            column = nxt
            if owner[column] == 0:
                break
        while column:
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    return u[1:] + v[1:]


def _triple_cost(costs: np.ndarray, extra: np.ndarray, x: int, a: int, b: int) -> int:
    return int(costs[x, a] + costs[x, b] + costs[a, b] + extra[x] + extra[a] + extra[b])


def solve_exact(costs: np.ndarray, extra: np.ndarray) -> tuple[int, Groups]:
    """Optimal groups of nodes 0..n-1: pairs, plus one triple when n is odd.

    costs: symmetric n x n integer matrix of pair costs. extra: per-node cost of being in the
    triple. Returns (total cost, groups).
    """
    n = costs.shape[0]
    if n < 2:
        raise ValueError(f"cannot group {n} people")
    if n % 2 == 0:
        return min_cost_perfect_matching(list(range(n)), costs)
    if n == 3:
        return _triple_cost(costs, extra, 0, 1, 2), [(0, 1, 2)]
    return _solve_odd(costs.astype(np.int64), extra.astype(np.int64))


def _solve_odd(costs: np.ndarray, extra: np.ndarray) -> tuple[int, Groups]:
    n = costs.shape[0]
    masked = costs.copy()
    np.fill_diagonal(masked, np.iinfo(np.int64).max // 4)
    cheapest_two = np.partition(masked, 1, axis=1)[:, :2].sum(axis=1)
    join_bound = extra + cheapest_two  # h(x): x joining any two, at best

    dummy = n
    relaxed = np.zeros((n + 1, n + 1), dtype=np.int64)
    relaxed[:n, :n] = costs
    relaxed[dummy, :n] = join_bound
    relaxed[:n, dummy] = join_bound
    lower, relaxed_pairs = min_cost_perfect_matching(list(range(n + 1)), relaxed)

    third = next(a if b == dummy else b for a, b in relaxed_pairs if dummy in (a, b))
    pairs = [p for p in relaxed_pairs if dummy not in p]
    best_cost, best = _attach_third(costs, extra, third, pairs, lower, join_bound)
    if best_cost == lower:
        return best_cost, best

    full_bound_cache: dict[int, int] = {}

    def without_one(x: int) -> int:
        if x not in full_bound_cache:
            rest = [v for v in range(n) if v != x]
            full_bound_cache[x] = min_cost_perfect_matching(rest, costs)[0]
        return full_bound_cache[x]

    for bound, x, a, b in _candidate_triples(costs, extra, join_bound, lower, best_cost):
        if bound >= best_cost:
            break
        extras = int(extra[x] + extra[a] + extra[b])
        second = extras + max(
            without_one(x) + int(costs[x, a] + costs[x, b]),
            without_one(a) + int(costs[a, x] + costs[a, b]),
            without_one(b) + int(costs[b, x] + costs[b, a]),
        )
        if second >= best_cost:
            continue
        rest = [v for v in range(n) if v not in (x, a, b)]
        rest_cost, rest_pairs = min_cost_perfect_matching(rest, costs)
        total = rest_cost + _triple_cost(costs, extra, x, a, b)
        if total < best_cost:
            best_cost, best = total, [*rest_pairs, (x, a, b)]
    return best_cost, best


def _attach_third(
    costs: np.ndarray,
    extra: np.ndarray,
    third: int,
    pairs: Groups,
    lower: int,
    join_bound: np.ndarray,
) -> tuple[int, Groups]:
    """Best solution from the relaxed matching: `third` joins the pair where it costs least."""
    best_gap = None
    best_index = 0
    for index, (a, b) in enumerate(pairs):
        gap = int(costs[third, a] + costs[third, b] + extra[third] + extra[a] + extra[b])
        gap -= int(join_bound[third])
        if best_gap is None or gap < best_gap:
            best_gap, best_index = gap, index
    assert best_gap is not None
    a, b = pairs[best_index]
    groups = [p for i, p in enumerate(pairs) if i != best_index]
    triple = (third, a, b)
    total = lower + best_gap
    # Cheap polish: re-split the triple with each pair (5 people into a triple and a pair).
    improved = True
    while improved:
        improved = False
        for index, pair in enumerate(groups):
            pool = (*triple, *pair)
            before = _triple_cost(costs, extra, *triple) + int(costs[pair[0], pair[1]])
            for i, j in _PAIR_CHOICES:
                rest = tuple(v for k, v in enumerate(pool) if k not in (i, j))
                after = _triple_cost(costs, extra, *rest) + int(costs[pool[i], pool[j]])
                if after < before:
                    total += after - before
                    triple, groups[index] = rest, (pool[i], pool[j])
                    improved = True
                    break
    groups.append(tuple(sorted(triple)))
    return total, groups


_PAIR_CHOICES = [(i, j) for i in range(5) for j in range(i + 1, 5)]


def _candidate_triples(
    costs: np.ndarray,
    extra: np.ndarray,
    join_bound: np.ndarray,
    lower: int,
    upper: int,
) -> list[tuple[int, int, int, int]]:
    """Triples (x < a < b) whose cheap bounds are below `upper`, lowest bound first.

    Two bounds, the larger counts: the relaxation R one (lower + the largest gap over the
    three ways of seeing the triple as a pair plus a third), and the LP one: the triple's own
    cost plus half the duals of everyone else.
    """
    n = costs.shape[0]
    found: list[tuple[int, int, int, int]] = []
    index = np.arange(n)
    duals = fractional_duals(costs)
    dual_total = int(duals.sum())
    for x in range(n - 2):
        row = costs[x]
        extras = extra[x] + extra[:, None] + extra[None, :]
        gap_x = row[:, None] + row[None, :] + extras - join_bound[x]
        gap_a = row[:, None] + costs + extras - join_bound[:, None]
        gap = np.maximum(np.maximum(gap_x, gap_a), gap_a.T)
        inside = row[:, None] + row[None, :] + costs + extras
        twice_lp = 2 * inside + dual_total - duals[x] - duals[:, None] - duals[None, :]
        bound = np.maximum(lower + gap, (twice_lp + 1) // 2)  # integer totals: round up
        keep = (bound < upper) & (index[:, None] > x) & (index[:, None] < index[None, :])
        a_idx, b_idx = np.nonzero(keep)
        bounds = bound[a_idx, b_idx]
        found.extend(zip(bounds.tolist(), [x] * len(a_idx), a_idx.tolist(), b_idx.tolist(), strict=True))
    found.sort()
    return found
