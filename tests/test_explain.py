"""`explain`: the plain-data account of what the inbox makes of a raw message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.explain import explain

MAIL = Path(__file__).parent / "data" / "mail"
EXPECTED: dict[str, dict] = json.loads((MAIL / "expected.json").read_text(encoding="utf-8"))
OWN = ["coffee@unmentoring.example.org"]
KEYS = {"kind", "command", "argument", "sender", "bounced_addresses", "reason"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_explain_agrees_with_the_expectations(name):
    expected = EXPECTED[name]
    result = explain((MAIL / name).read_bytes(), own_addresses=OWN)
    assert set(result) == KEYS
    assert result["kind"] == expected["kind"]
    assert result["command"] == expected.get("command")
    assert result["argument"] == expected.get("argument")
    assert result["bounced_addresses"] == expected.get("bounced", [])
    assert result["reason"]
    json.dumps(result)  # plain data, printable by the CLI


def test_explain_a_command():
    result = explain((MAIL / "reply-outlook-missed.eml").read_bytes(), own_addresses=OWN)
    assert result == {
        "kind": "command",
        "command": "missed",
        "argument": "she was ill, we'll try again next month.",
        "sender": "bob.jones@council.example.org",
        "bounced_addresses": [],
        "reason": "command 'missed' in the text",
    }


def test_explain_a_bounce():
    result = explain((MAIL / "bounce-gmail-550.eml").read_bytes(), own_addresses=OWN)
    assert result["kind"] == "bounce"
    assert result["command"] is None and result["argument"] is None
    assert result["sender"] == "mailer-daemon@googlemail.com"
    assert result["bounced_addresses"] == ["no.such.person@gmail.com"]
    assert "permanent" in result["reason"]


def test_explain_empty_input():
    result = explain(b"", own_addresses=OWN)
    assert set(result) == KEYS
    assert result["sender"] == ""
    assert result["kind"] in ("auto_reply", "not_command")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_explain_never_raises(raw):
    result = explain(raw, own_addresses=OWN)
    assert set(result) == KEYS
    json.dumps(result)
