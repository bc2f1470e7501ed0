"""Commands as people write them (tests/data/commands/phrasings.json), read through the real parser
and grammar from a mail a client would send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inbox.grammar import read_command
from inbox.parse import parse_message
from tests.test_grammar import message

CORPUS = json.loads((Path(__file__).parent / "data/commands/phrasings.json").read_text(encoding="utf-8"))
PHRASINGS: list[dict[str, Any]] = CORPUS["phrasings"]


def test_the_corpus_is_large_enough_and_has_no_repeats() -> None:
    texts = [entry["text"] for entry in PHRASINGS]
    assert len(texts) >= 40 and len(set(texts)) == len(texts)


@pytest.mark.parametrize("entry", PHRASINGS, ids=[entry["text"] for entry in PHRASINGS])
def test_a_phrasing_reads_as_expected(entry: dict[str, Any]) -> None:
    command = read_command(parse_message(message(entry["text"], "Re: Your UnMentoring partner")))
    if entry["command"] is None:
        assert command is None
        return
    assert command is not None and command.name == entry["command"]
    if "argument" in entry:
        assert command.argument == entry["argument"]
    if "fields" in entry:
        assert dict(command.fields) == entry["fields"]
    assert list(command.suggested) == entry.get("suggested", [])
