"""Bench: how many real-style delivery failure reports classify reads right, and how many
non-bounces it mistakes for one.

Corpus: tests/data/bounces/*.eml with tests/data/bounces/manifest.json (per file the expected
failed addresses and whether the failure is permanent, or ``"bounce": false`` for a message that
only looks like one), plus the bounces and non-bounces of tests/data/mail (expected.json).

A bounce is *recognised* when it is classified as a bounce; *read right* when, in addition, its
addresses and permanence are the expected ones. A *false positive* is a non-bounce classified as
a bounce. Prints ONE JSON line; --misses lists what was not read right.

Another corpus in the same layout (a folder of .eml files and its manifest.json), e.g. the held-out
set tests/data/bounces-heldout/, is measured alone when given as the argument.

Run: .venv/bin/python bench/bounces.py [FOLDER] [--misses]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inbox.classify import Kind, classify  # noqa: E402
from inbox.parse import parse_message  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
OWN = ["coffee@unmentoring.example.org"]


def corpus(folder: Path | None = None) -> list[tuple[Path, dict]]:
    """(file, expectation) for every message: {"bounced": [...], "permanent": bool} or {"bounce": False}."""
    if folder is not None:
        return folder_corpus(folder)
    items = folder_corpus(DATA / "bounces")
    mail = json.loads((DATA / "mail" / "expected.json").read_text(encoding="utf-8"))
    for name, expected in mail.items():
        if expected["kind"] == "bounce":
            items.append(
                (DATA / "mail" / name, {"bounced": expected["bounced"], "permanent": expected["permanent"]})
            )
        else:
            items.append((DATA / "mail" / name, {"bounce": False}))
    return items


def folder_corpus(folder: Path) -> list[tuple[Path, dict]]:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return [(folder / name, expected) for name, expected in manifest.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, help="a corpus folder with manifest.json (default: the project's own)"
    )
    parser.add_argument("--misses", action="store_true", help="list the messages not read right")
    args = parser.parse_args()
    items = corpus(args.folder)
    bounces = recognised = right = non_bounces = false_positives = 0
    misses = []
    started = time.perf_counter()
    for path, expected in items:
        raw = path.read_bytes()
        result = classify(raw, parse_message(raw), own_addresses=OWN)
        is_bounce = result.kind is Kind.BOUNCE
        if expected.get("bounce") is False:
            non_bounces += 1
            false_positives += is_bounce
            if is_bounce:
                misses.append(f"{path.name}: false positive ({result.reason})")
            continue
        bounces += 1
        recognised += is_bounce
        ok = is_bounce and (result.bounced_addresses, result.permanent) == (
            expected["bounced"],
            expected["permanent"],
        )
        right += ok
        if not ok:
            got = (result.kind.value, result.bounced_addresses, result.permanent)
            misses.append(f"{path.name}: got {got}, expected {expected} ({result.reason})")
    seconds = time.perf_counter() - started
    folder = args.folder or DATA / "bounces"
    formats = {p.name.split("-")[0] for p, e in items if "bounce" not in e and p.parent == folder}
    print(
        json.dumps(
            {
                "bounces": bounces,
                "formats": len(formats),
                "recognised": recognised,
                "recognised_rate": round(recognised / bounces, 4),
                "read_right": right,
                "read_right_rate": round(right / bounces, 4),
                "non_bounces": non_bounces,
                "false_positives": false_positives,
                "seconds": round(seconds, 2),
            }
        )
    )
    if args.misses:
        print("\n".join(misses), file=sys.stderr)


if __name__ == "__main__":
    main()
