"""Reading people's answers to "Did you meet X?": a corpus of replies as mail clients write them
(tests/data/answers/<client>/<case>.eml, expected readings in expected.json), read from the raw
bytes as the inbox reads them (parse_message, strip_reply), then unit tests of the reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inbox.answers import ANSWER_WORDS, Answer, Doubt, Outcome, read_answer
from inbox.parse import parse_message, strip_reply

CORPUS = Path(__file__).parent / "data" / "answers"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_the_corpus_and_its_manifest_agree():
    files = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.eml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 100
    assert len({p.split("/")[0] for p in files}) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_answer_is_read_as_expected(name):
    expected = EXPECTED[name]
    parsed = parse_message((CORPUS / name).read_bytes())
    text = strip_reply(parsed.full_text)
    assert text == parsed.text
    # Nothing of the quoted follow-up is left: its "met" and "missed" would be read as answers.
    assert "Just reply" not in text and "Coffee Roulette" not in text and "round 2025-03" not in text, text
    answer = read_answer(text)
    assert answer is not None, text
    assert (answer.outcome.value, answer.comment) == (expected["outcome"], expected["comment"]), text
