"""Child process for the store crash test: commits transactions and reports each commit on stdout.

Transaction i inserts member m<i> with content derived from (seed, i), rewrites member "counter" and sets the
meta value "count" to i + 1, so a reader can tell exactly which transactions a file holds.
"""

from __future__ import annotations

import random
import sys

from matcher.model import Member
from matcher.store import Store


def member_for(seed: int, i: int) -> Member:
    rng = random.Random(seed * 100_003 + i)
    return Member(
        f"m{i}",
        f"p{i}@example.org",
        name="".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 40))),
        about="x" * rng.randint(0, 2000),
        frequency=rng.randint(1, 3),
    )


def main(path: str, seed: int, count: int) -> None:
    with Store.open(path) as store:
        for i in range(count):
            with store.transaction():
                store.put(member_for(seed, i))
                store.put(Member("counter", "", name=str(i + 1)))
                store.set_meta("count", i + 1)
            print(i + 1, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
