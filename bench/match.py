"""Benchmark of the pairing algorithm (matcher/pairing.py) against plain networkx blossom.

    python bench/match.py                      one JSON line per N in 100, 2000, 10000, 100000
    python bench/match.py --sizes 100,2000     other sizes
    python bench/match.py --instance FILE.json pair one programme read from a file
    python bench/match.py --triples            fairness of the triple: 24 rounds of 11 people

Default instance for N: N people in N/20 organisations, a history of 12 rounds made by
pairing everyone at random 12 times (random host per group), fixed seeds. "exact" is plain
networkx max_weight_matching on the complete graph with the same integer costs, run in the
same process on the same instance, for N <= --exact-limit (2000).

Instance file: {"people": [{"id": "a", "org": "x"}, ...],
                "history": [{"round": 1, "group": ["a", "b"], "host": "a"}, ...],   host optional
                "seed": 7}
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import networkx as nx  # noqa: E402

from matcher.pairing import PastGroup, Person, make_pairing  # noqa: E402
from matcher.pairing_cost import build_cost_model  # noqa: E402

DEFAULT_SIZES = (100, 2000, 10000, 100000)
HISTORY_ROUNDS = 12
INSTANCE_SEED = 20240601
PAIRING_SEED = 7


class InstanceError(Exception):
    """An instance file that cannot be used; the message says what is wrong."""


def generated_instance(n: int, seed: int = INSTANCE_SEED) -> tuple[list[Person], list[PastGroup]]:
    rng = random.Random(f"{seed}/{n}")
    orgs = max(1, n // 20)
    people = [Person(f"p{i:07d}", f"org{rng.randrange(orgs)}") for i in range(n)]
    ids = [p.id for p in people]
    history: list[PastGroup] = []
    for rnd in range(1, HISTORY_ROUNDS + 1):
        rng.shuffle(ids)
        cut = n - (3 if n % 2 else 0)
        groups = [(ids[i], ids[i + 1]) for i in range(0, cut, 2)]
        if cut < n:
            groups.append(tuple(ids[cut:]))
        history.extend(PastGroup(rnd, members, rng.choice(members)) for members in groups)
    return people, history


def exact_with_networkx(people: list[Person], history: list[PastGroup]) -> tuple[float, int, int]:
    """Plain blossom on the complete graph: (seconds, repeats, same_org). Even N only."""
    if len(people) % 2:
        raise ValueError("the plain blossom baseline needs an even number of people")
    started = time.perf_counter()
    model = build_cost_model({p.id: p.org for p in people}, history)
    ids = [p.id for p in people]
    costs = {(a, b): model.pair_cost(a, b) for a, b in combinations(ids, 2)}
    big = max(costs.values(), default=0) + 1
    graph = nx.Graph()
    graph.add_weighted_edges_from((a, b, big - cost) for (a, b), cost in costs.items())
    del costs
    matching = nx.max_weight_matching(graph, maxcardinality=True)
    seconds = time.perf_counter() - started
    repeats = sum(model.is_repeat(a, b) for a, b in matching)
    same_org = sum(model.is_same_org(a, b) for a, b in matching)
    return seconds, repeats, same_org


def timed_pairing(people: list[Person], history: list[PastGroup], seed: int):
    gc.collect()
    started = time.perf_counter()
    result = make_pairing(people, history, seed)
    return time.perf_counter() - started, result


def run_sizes(sizes: list[int], exact_limit: int) -> None:
    for n in sizes:
        people, history = generated_instance(n)
        seconds, result = timed_pairing(people, history, PAIRING_SEED)
        line = {
            "n": n,
            "seconds": round(seconds, 4),
            "repeats": result.repeats,
            "same_org": result.same_org,
            "exact_seconds": None,
            "exact_repeats": None,
            "exact_same_org": None,
        }
        if n <= exact_limit and n % 2 == 0:
            exact_seconds, exact_repeats, exact_same_org = exact_with_networkx(people, history)
            line.update(
                exact_seconds=round(exact_seconds, 4),
                exact_repeats=exact_repeats,
                exact_same_org=exact_same_org,
            )
        print(json.dumps(line), flush=True)


def read_instance(path: Path) -> tuple[list[Person], list[PastGroup], int]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InstanceError(f"cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InstanceError(f"not UTF-8 text: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstanceError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InstanceError("the top level must be an object with people, history and seed")
    missing = [key for key in ("people", "history", "seed") if key not in data]
    if missing:
        raise InstanceError(f"missing key(s): {', '.join(missing)}")
    seed = data["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InstanceError("seed must be an integer")
    if not isinstance(data["people"], list):
        raise InstanceError("people must be a list")
    if not isinstance(data["history"], list):
        raise InstanceError("history must be a list")
    people = []
    for i, entry in enumerate(data["people"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise InstanceError(f"people[{i}] must be an object with a string id")
        org = entry.get("org", "")
        if org is None:
            org = ""
        if not isinstance(org, str):
            raise InstanceError(f"people[{i}].org must be a string")
        people.append(Person(entry["id"], org))
    history = []
    for i, entry in enumerate(data["history"]):
        if not isinstance(entry, dict):
            raise InstanceError(f"history[{i}] must be an object")
        rnd, group, host = entry.get("round"), entry.get("group"), entry.get("host")
        if not isinstance(rnd, int) or isinstance(rnd, bool):
            raise InstanceError(f"history[{i}].round must be an integer")
        if not isinstance(group, list) or not all(isinstance(m, str) for m in group):
            raise InstanceError(f"history[{i}].group must be a list of ids")
        if host is not None and not isinstance(host, str):
            raise InstanceError(f"history[{i}].host must be an id")
        history.append(PastGroup(rnd, tuple(group), host))
    return people, history, seed


def run_instance(path: Path) -> int:
    try:
        people, history, seed = read_instance(path)
        seconds, result = timed_pairing(people, history, seed)
    except (InstanceError, ValueError) as exc:
        print(f"bench/match.py: {path}: {exc}", file=sys.stderr)
        return 2
    out = {
        "groups": [list(group.members) for group in result.groups],
        "repeats": result.repeats,
        "same_org": result.same_org,
        "seconds": round(seconds, 4),
    }
    if result.unpaired:
        out["unpaired"] = result.unpaired
    print(json.dumps(out))
    return 0


def triple_fairness(people_count: int = 11, rounds: int = 24, seed: int = INSTANCE_SEED) -> dict[str, object]:
    """Pair the same programme round after round; how often was each person in the triple?

    Five organisations (3, 2, 2, 2 and 2 people), so same-organisation pairs are a live constraint
    too, though none forces anyone into the triple.
    """
    people = [Person(f"p{i:02d}", f"org{i % 5}") for i in range(people_count)]
    history: list[PastGroup] = []
    repeats = 0
    for rnd in range(1, rounds + 1):
        result = make_pairing(people, history, seed=seed + rnd)
        repeats += result.repeats
        history.extend(PastGroup(rnd, group.members, group.host) for group in result.groups)
    in_triples = Counter(person for group in history if len(group.members) == 3 for person in group.members)
    counts = [in_triples[person.id] for person in people]
    return {
        "people": people_count,
        "rounds": rounds,
        "max_triples_per_person": max(counts),
        "min_triples_per_person": min(counts),
        "repeats": repeats,
    }


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes must be integers: {text!r}") from exc
    if not sizes or any(n < 0 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be non-negative integers: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", type=Path, help="pair the programme in this JSON file")
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES))
    parser.add_argument("--exact-limit", type=int, default=2000)
    parser.add_argument("--triples", action="store_true", help="max triples per person, 24 rounds of 11")
    args = parser.parse_args(argv)
    if args.triples:
        print(json.dumps(triple_fairness()))
        return 0
    if args.instance is not None:
        return run_instance(args.instance)
    run_sizes(args.sizes, args.exact_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
