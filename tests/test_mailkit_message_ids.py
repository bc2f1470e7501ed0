"""mailkit.message_ids: ours are random and usable; others' are read and checked."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from mailkit.message_ids import (
    checked_message_id,
    is_usable_message_id,
    message_id_in,
    message_ids_in,
    new_message_id,
)


def test_new_ids_are_random_usable_and_on_our_domain() -> None:
    ids = {new_message_id("example.org") for _ in range(200)}
    assert len(ids) == 200
    for mid in ids:
        local, domain = mid.split("@")
        assert domain == "example.org" and re.fullmatch(r"[A-Za-z0-9_-]{24}", local)
        assert is_usable_message_id(mid) and checked_message_id(f"<{mid}>") == mid


def test_a_new_id_survives_a_round_trip_through_a_header() -> None:
    mid = new_message_id("example.org")
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["Message-ID"] = f"<{mid}>"
    reread = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert message_id_in(str(reread["Message-ID"])) == mid


@pytest.mark.parametrize(
    "value",
    [
        "",
        "no-at-sign",
        "a b@example.org",
        "a@exa mple.org",
        "<a@b>\r\nBcc: x@y",
        "x" * 201 + "@example.org",
        "a@",
    ],
)
def test_unusable_ids_are_refused(value: str) -> None:
    assert not is_usable_message_id(value)
    with pytest.raises(ValueError, match="not a usable Message-ID"):
        checked_message_id(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<abc@example.org>", "abc@example.org"),
        ("  <abc@example.org> (comment)", "abc@example.org"),
        ("abc@example.org", "abc@example.org"),
        ("<>", None),
        ("", None),
    ],
)
def test_the_id_of_a_message_id_header(text: str, expected: str | None) -> None:
    assert message_id_in(text) == expected


def test_thread_ids_are_bracketed_ids_else_words_with_an_at() -> None:
    assert message_ids_in("<a@x> <b@y>") == ["a@x", "b@y"]
    assert message_ids_in("a@x junk b@y") == ["a@x", "b@y"]
    assert message_ids_in("nothing here") == []
