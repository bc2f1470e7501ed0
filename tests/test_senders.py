"""Who is never answered: classification and applying ask the same question and get the same answer."""

from __future__ import annotations

import pytest

from inbox.apply import apply_message
from inbox.classify import Kind, classify
from inbox.grammar import read_command
from inbox.parse import parse_message
from inbox.senders import reason_not_to_answer
from tests.test_apply import PROGRAMME, Harness, make_message

UNANSWERABLE = [
    ("From", "noreply@shop.example", "no-reply"),
    ("From", "no_reply@shop.example", "no-reply"),
    ("From", "do-not-reply+news@shop.example", "no-reply"),
    ("From", "DoNotReply@shop.example", "no-reply"),
    ("From", "mailer-daemon@mx.example", "no-reply"),
    ("From", "postmaster@mx.example", "no-reply"),
    ("Return-Path", "<no-reply.bounces@esp.example>", "Return-Path is a no-reply"),
    ("From", PROGRAMME, "our own address"),
    ("From", "coffee+abcdef1234567890@unmentoring.example.org", "our own address"),
    ("Auto-Submitted", "auto-replied", "Auto-Submitted"),
    ("Auto-Submitted", "auto-generated; owner-email=x@example.org", "Auto-Submitted"),
]


def _raw(header: str, value: str) -> bytes:
    if header == "From":
        return make_message(value, "join")
    return make_message("ann@example.org", "join", headers={header: value})


@pytest.mark.parametrize(("header", "value", "said"), UNANSWERABLE)
def test_machine_and_own_senders_are_never_answered(box: Harness, header: str, value: str, said: str) -> None:
    raw = _raw(header, value)
    parsed = parse_message(raw)
    assert said in reason_not_to_answer(parsed, box.settings.own_addresses)
    assert classify(raw, parsed, own_addresses=box.settings.own_addresses).kind not in (
        Kind.COMMAND,
        Kind.NOT_COMMAND,
    )
    # Applied even though classification would have stopped it (e.g. classified elsewhere): ignored.
    applied = apply_message(box.store, box.settings, box.clock.now(), parsed, read_command(parsed), "k1")
    assert not applied.changed and not applied.notices and applied.action.startswith("ignored")
    assert box.send(raw).notices == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "no"),
        ("From", "noreplyhelp@example.org"),  # a person whose name merely starts like it
        ("From", "coffee@other.example"),  # our local part at another domain
    ],
)
def test_people_are_answered(box: Harness, header: str, value: str) -> None:
    raw = _raw(header, value)
    parsed = parse_message(raw)
    assert reason_not_to_answer(parsed, box.settings.own_addresses) == ""
    assert classify(raw, parsed, own_addresses=box.settings.own_addresses).kind is Kind.COMMAND
    assert [n.kind for n in box.send(raw).notices] == ["confirm_join"]
