"""How fast the commands that draw nothing start: `unmentoring --help`, `status` and `explain`, each against
`python -c pass` in the same run (the interpreter's own start, the floor).

    .venv/bin/python bench/cli_startup.py [--runs 15]

Each command runs ``--runs`` times as a fresh process (the installed `unmentoring` script of this venv), in a
fresh sandbox data folder, round robin so that a change in the machine's load hits every command alike; the
table gives the median and the slowest run in seconds, and the median minus the floor's. Target: every median
at most 0.25 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 0.25
HERE = Path(__file__).resolve().parent
MESSAGE = HERE.parent / "tests" / "data" / "mail" / "autoreply-gmail-vacation.eml"


def commands(script: Path) -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "unmentoring --help": [str(script), "--help"],
        "unmentoring status": [str(script), "status"],
        "unmentoring explain": [str(script), "explain", str(MESSAGE)],
    }


def timed(argv: list[str], folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("unmentoring")
    if not script.exists():
        parser.error(f"{script} not found: install the package into this venv first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chosen = commands(script)
        for argv in chosen.values():  # once untimed: the data folder is made, the files are in the cache
            timed(argv, folder)
        times: dict[str, list[float]] = {name: [] for name in chosen}
        for _ in range(args.runs):
            for name, argv in chosen.items():
                times[name].append(timed(argv, folder))
    floor = statistics.median(times["python -c pass"])
    print(f"| command | median_s | slowest_s | above_floor_s | <= {TARGET_SECONDS} s |")
    print("|---|---|---|---|---|")
    met = True
    for name, samples in times.items():
        median = statistics.median(samples)
        ok = median <= TARGET_SECONDS
        met = met and ok
        verdict = "yes" if ok else "NO"
        print(f"| `{name}` | {median:.3f} | {max(samples):.3f} | {median - floor:.3f} | {verdict} |")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
