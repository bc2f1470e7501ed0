"""The docs cite only files that exist: every `path/like/this.py` that ARCHITECTURE.md, SECURITY.md
and README.md name is in the repo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("ARCHITECTURE.md", "SECURITY.md", "README.md")
# A path with at least one folder, ending in .py; a glob (cli*.py) names a family, checked by pattern.
_CITED = re.compile(r"(?<![\w./-])((?:[\w.*-]+/)+[\w.*-]+\.py)\b")


def cited_paths(text: str) -> list[str]:
    return sorted(set(_CITED.findall(text)))


@pytest.mark.parametrize("doc", DOCS)
def test_every_cited_python_file_exists(doc: str) -> None:
    cited = cited_paths((ROOT / doc).read_text(encoding="utf-8"))
    assert cited, f"{doc} cites no file: the pattern no longer reads it"
    missing = [path for path in cited if not any(ROOT.glob(path))]
    assert missing == [], f"{doc} cites files that do not exist: {missing}"


def test_the_pattern_finds_paths_and_skips_bare_names() -> None:
    text = "see `inbox/questions.py`, bench/bounces.py --misses, `app.py` and tests/data/x.py."
    assert cited_paths(text) == ["bench/bounces.py", "inbox/questions.py", "tests/data/x.py"]
