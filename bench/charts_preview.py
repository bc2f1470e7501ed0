"""Render the summary pictures for synthetic programmes and time each one.

    .venv/bin/python bench/charts_preview.py OUT_DIR [--members 20 2000] [--rounds 12]

Writes growth-N.png, round-N.png and met-N.png for each programme size N into OUT_DIR and
prints the seconds each picture took. The data are synthetic: organisations of very uneven size
(a few large employers, many small ones), people joining and leaving month by month, random
groups each round (pairs plus one triple for odd counts) and a mix of outcomes.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.charts import (  # noqa: E402
    Edge,
    MonthPoint,
    Node,
    growth_chart_png,
    met_network_png,
    round_network_png,
)

FIRST_NAMES = (
    "Ana",
    "Ben",
    "Chloé",
    "Dev",
    "Ewa",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jon",
    "Kemi",
    "Lars",
    "Maya",
    "Nils",
    "Olu",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Vik",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
)
ORG_WORDS = (
    "Acme",
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Gringotts",
    "Aperture",
    "Oscorp",
    "Pied Piper",
    "Dunder",
    "Monarch",
    "Massive",
)
OUTCOME_WEIGHTS = (("met", 0.62), ("missed", 0.15), ("no_reply", 0.23))


def synthetic_programme(size: int, rounds: int, seed: int) -> dict:
    """People, monthly membership figures and every round's groups for about `size` members."""
    rng = random.Random(seed)
    org_count = max(4, size // 12)
    orgs = [
        f"{ORG_WORDS[i % len(ORG_WORDS)]}{'' if i < len(ORG_WORDS) else f' {i // len(ORG_WORDS)}'}"
        for i in range(org_count)
    ]
    org_weights = [1.0 / (k + 1) ** 1.1 for k in range(org_count)]
    total = round(size * 1.15)
    people = []
    for i in range(total):
        joined = 0 if rng.random() < 0.45 else rng.randrange(rounds)
        left = rng.randrange(joined + 1, rounds + 1) if rng.random() < 0.13 else None
        people.append(
            {
                "id": f"m{i:05d}",
                "label": f"{FIRST_NAMES[i % len(FIRST_NAMES)]}"
                + ("" if total <= len(FIRST_NAMES) else f" {chr(65 + (i // len(FIRST_NAMES)) % 26)}."),
                "org": rng.choices(orgs, org_weights)[0],
                "joined": joined,
                "left": left,
            }
        )

    months, round_edges = [], []
    for month in range(rounds):
        active = [p for p in people if p["joined"] <= month and (p["left"] is None or p["left"] > month)]
        months.append(
            MonthPoint(
                month=f"{2026 + month // 12}-{month % 12 + 1:02d}",
                members=len(active),
                joins=sum(1 for p in people if p["joined"] == month),
                leaves=sum(1 for p in people if p["left"] == month),
            )
        )
        order = [p["id"] for p in active]
        rng.shuffle(order)
        groups = [order[i : i + 2] for i in range(0, len(order) - len(order) % 2, 2)]
        if len(order) % 2 and groups:
            groups[-1].append(order[-1])
        edges = []
        for group in groups:
            for i in range(len(group)):
                for j in range(i + 1, len(group)):
                    outcome = rng.choices(*zip(*OUTCOME_WEIGHTS, strict=True))[0]
                    edges.append(Edge(group[i], group[j], outcome))
        round_edges.append((active, edges))

    met = Counter()
    for _, edges in round_edges:
        for e in edges:
            if e.outcome == "met":
                met[tuple(sorted((e.a, e.b)))] += 1
    last_active, last_edges = round_edges[-1]
    # People who left are erased: they keep their dot but lose their name.
    everyone = [Node(p["id"], p["label"] if p["left"] is None else "", p["org"]) for p in people]
    return {
        "months": months,
        "round_nodes": [Node(p["id"], p["label"], p["org"]) for p in last_active],
        "round_edges": last_edges,
        "met_nodes": everyone,
        "met_edges": [(a, b, n) for (a, b), n in met.items()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--members", type=int, nargs="+", default=[20, 2000])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    for size in args.members:
        started = time.perf_counter()
        data = synthetic_programme(size, args.rounds, args.seed)
        print(
            f"{size} members: synthetic data {time.perf_counter() - started:.2f} s "
            f"({len(data['round_edges'])} round edges, {len(data['met_edges'])} met pairs)"
        )
        jobs = {
            f"growth-{size}.png": lambda d=data, s=size: growth_chart_png(
                d["months"], title=f"Members over time ({s:,}-member programme)"
            ),
            f"round-{size}.png": lambda d=data, s=size: round_network_png(
                d["round_nodes"], d["round_edges"], title=f"Round {args.rounds} groups", seed=args.seed
            ),
            f"met-{size}.png": lambda d=data, s=size: met_network_png(
                d["met_nodes"], d["met_edges"], title="Who has met whom so far", seed=args.seed
            ),
        }
        for name, render in jobs.items():
            started = time.perf_counter()
            png = render()
            elapsed = time.perf_counter() - started
            (args.out_dir / name).write_bytes(png)
            print(f"  {name:18} {elapsed:6.2f} s  {len(png) / 1024:7.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
