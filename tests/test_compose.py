"""Building emails: headers, MIME structure, 7-bit bytes, safe names, images."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.compose import (
    ComposeError,
    address_of,
    compose,
    list_unsubscribe,
    plain_header_text,
)
from mailer.headers import Framing
from mailer.render import Renderer
from mailkit.policy import message_bytes
from matcher.model import Notice
from tests.test_render import SAMPLE_VALUES, make_settings

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
SETTINGS = make_settings()
RENDERER = Renderer(SETTINGS)


def build(notice: Notice, message_id: str = "fixed-id@example.org", **framing: Any) -> bytes:
    """The email as mailer/compose.py writes it; ``framing``: thread, reply_to, images (mailer/headers.py)."""
    rendered = RENDERER.render(notice.kind, notice.values, to=notice.to)
    msg = compose(notice, rendered, SETTINGS, Framing(message_id, **framing), now=NOW)
    return message_bytes(msg)


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def welcome(**changes: object) -> Notice:
    notice = Notice("welcome", ["alice@example.org"], dict(SAMPLE_VALUES["welcome"]), key="reply:k:welcome")
    for name, value in changes.items():
        setattr(notice, name, value)
    return notice


def test_headers_of_a_single_member_mail() -> None:
    msg = parse(build(welcome(unsubscribe_token="Tok_en-1")))
    assert str(msg["From"]) == "Coffee Trials <coffee@example.org>"
    assert msg["To"].addresses[0].addr_spec == "alice@example.org"
    assert msg["To"].addresses[0].display_name == "Alice"
    assert str(msg["Reply-To"]) == "coffee@example.org"
    assert msg["Subject"] == "Welcome to Coffee Trials"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == "<fixed-id@example.org>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Id"] == "<coffee-trials.example.org>"
    assert msg["List-Unsubscribe"] == "<mailto:coffee@example.org?subject=leave%20Tok_en-1>"
    assert msg["X-UnMentoring-Kind"] == "welcome"
    assert msg["Precedence"] is None
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_an_answer_is_auto_replied_and_unsubscribe_without_token_asks_to_confirm() -> None:
    msg = parse(build(welcome(auto_reply=True)))
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["List-Unsubscribe"] == "<mailto:coffee@example.org?subject=leave>"
    assert list_unsubscribe("a@b.example", "x y") == "<mailto:a@b.example?subject=leave%20x%20y>"


def test_body_is_text_and_html_alternatives_in_7bit_with_crlf() -> None:
    values = dict(SAMPLE_VALUES["welcome"], name="Zoë Ünal")
    raw = build(welcome(values=values))
    assert raw.isascii()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hi Zoë Ünal," in text and "Hi Zoë Ünal," in html
    assert msg["To"].addresses[0].display_name == "Zoë Ünal"


@pytest.mark.parametrize(
    "name",
    ["Smith, John", 'The "Boss"', "Zoë Ünal-Øre", "Eve\r\nBcc: victim@example.net", "Tab\there"],
)
def test_awkward_names_are_encoded_safely(name: str) -> None:
    members = [
        {"name": name, "org": "X", "about": "", "address": "odd@example.org"},
        {"name": "Bob", "org": "Y", "about": "", "address": "bob@example.org"},
    ]
    notice = Notice(
        "intro",
        ["odd@example.org", "bob@example.org"],
        dict(SAMPLE_VALUES["intro"], members=members, host=name),
    )
    raw = build(notice, reply_to=["odd@example.org", "bob@example.org"])
    assert raw.isascii()
    msg = parse(raw)
    assert msg["Bcc"] is None
    expected = " ".join(name.split())
    assert [a.display_name for a in msg["To"].addresses] == [expected, "Bob"]
    assert [a.addr_spec for a in msg["To"].addresses] == ["odd@example.org", "bob@example.org"]
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == [
        "odd@example.org",
        "bob@example.org",
    ]
    assert expected in msg["Subject"]
    header_names = [
        line.split(b":")[0]
        for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n")
        if line and not line[:1].isspace()
    ]
    assert b"Bcc" not in header_names


def test_programme_name_with_comma_and_quotes_in_from() -> None:
    settings = make_settings()
    object.__setattr__(settings, "programme_name", 'Coffee, "Tea" & Ünity')
    notice = welcome()
    rendered = Renderer(settings).render(notice.kind, notice.values)
    msg = parse(message_bytes(compose(notice, rendered, settings, Framing("a@example.org"), now=NOW)))
    assert msg["From"].addresses[0].display_name == 'Coffee, "Tea" & Ünity'
    assert msg["From"].addresses[0].addr_spec == "coffee@example.org"


def test_followup_is_threaded_to_the_intro() -> None:
    notice = Notice(
        "followup",
        ["bob@example.org"],
        dict(SAMPLE_VALUES["followup"]),
        key="followup:2026-12:1:m2",
    )
    msg = parse(build(notice, thread=["intro-1@example.org"]))
    assert msg["In-Reply-To"] == "<intro-1@example.org>"
    assert msg["References"] == "<intro-1@example.org>"
    assert str(msg["Reply-To"]) == "coffee@example.org"


def test_an_answer_is_threaded_under_the_last_message_of_its_thread() -> None:
    msg = parse(build(welcome(), thread=["<first@mail.example>", "<theirs@mail.example>"]))
    assert msg["In-Reply-To"] == "<theirs@mail.example>"
    assert msg["References"] == "<first@mail.example> <theirs@mail.example>"


def test_summary_images_are_inline_by_content_id_and_attached() -> None:
    notice = Notice(
        "summary",
        ["boss@example.org"],
        dict(SAMPLE_VALUES["summary"]),
        key="summary:2026-12",
    )
    msg = parse(build(notice, images={"growth": PNG, "network": PNG + b"n"}))
    assert msg.get_content_type() == "multipart/mixed"
    alternative = msg.get_payload()[0]
    assert alternative.get_content_type() == "multipart/alternative"
    text_part, related = alternative.get_payload()
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *inline = related.get_payload()
    assert 'src="cid:growth"' in html_part.get_content()
    assert {p["Content-ID"]: p.get_content() for p in inline} == {
        "<growth>": PNG,
        "<network>": PNG + b"n",
    }
    attachments = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert attachments == {"growth.png": PNG, "network.png": PNG + b"n"}
    assert "Members 42" in " ".join(text_part.get_content().split())


def test_an_image_shown_but_not_given_is_refused() -> None:
    notice = Notice("summary", ["boss@example.org"], dict(SAMPLE_VALUES["summary"]))
    with pytest.raises(ComposeError, match="network"):
        build(notice, images={"growth": PNG})


def test_non_png_image_is_refused() -> None:
    values = dict(SAMPLE_VALUES["summary"], images=["growth"])
    notice = Notice("summary", ["boss@example.org"], values)
    with pytest.raises(ComposeError, match="not PNG"):
        build(notice, images={"growth": b"GIF89a..."})


@pytest.mark.parametrize("address", ["not an address", "a@b@c", "x\r\n@example.org", "", "zoë@example.org"])
def test_bad_recipient_addresses_are_refused_with_the_address(address: str) -> None:
    with pytest.raises(ComposeError, match="welcome"):
        build(welcome(to=[address]))


def test_a_bad_message_id_is_refused() -> None:
    with pytest.raises(ComposeError, match="Message-ID"):
        build(welcome(), message_id="has space@example.org")
    with pytest.raises(ComposeError, match="Message-ID"):
        build(welcome(), thread=["x\r\nBcc: y@z"])


def test_mail_to_organisers_does_not_name_them_after_the_member() -> None:
    notice = Notice("bounce_disabled", ["boss@example.org"], dict(SAMPLE_VALUES["bounce_disabled"]))
    msg = parse(build(notice))
    assert str(msg["To"]) == "boss@example.org"
    assert "dan@example.org" in msg.get_body(("plain",)).get_content()


# -- plain headers are written as the email package writes them

STOCK = email.policy.SMTP.clone(cte_type="7bit", utf8=False)
_ATEXT = "abyZ09!#$%&'*+/=?^_`{|}~-"
_ATOM = st.text(alphabet=_ATEXT, min_size=1, max_size=8)
_WORDISH = st.text(alphabet=_ATEXT + ' .,;:()<>@"\\[]\té\x7f', max_size=90)
_IDS = st.lists(
    st.tuples(st.lists(_ATOM, min_size=1, max_size=3), st.lists(_ATOM, min_size=1, max_size=3)),
    min_size=1,
    max_size=3,
).map(lambda ids: " ".join(f"<{'.'.join(local)}@{'.'.join(domain)}>" for local, domain in ids))
_TEXT_HEADERS = (
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "List-Id",
    "List-Unsubscribe",
    "X-UnMentoring-Kind",
)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(_TEXT_HEADERS),
    st.one_of(st.lists(_ATOM, min_size=1, max_size=12).map(" ".join), _IDS, _WORDISH),
)
def test_a_plain_text_header_is_the_line_the_email_package_writes(name: str, value: str) -> None:
    text = plain_header_text(name, value)
    if text is None:
        return
    assert STOCK.fold_binary(name, STOCK.header_factory(name, value)) == (f"{name}: {text}\r\n".encode())


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 31),
        timezones=st.timezones(),
    )
)
def test_the_date_header_is_the_line_the_email_package_writes(when: datetime) -> None:
    text = plain_header_text("Date", when)
    assert text is not None
    assert STOCK.fold_binary("Date", STOCK.header_factory("Date", when)) == (f"Date: {text}\r\n".encode())


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.tuples(
            st.lists(_ATOM, min_size=1, max_size=3).map(".".join),
            st.lists(_ATOM, min_size=1, max_size=3).map(".".join),
        ).map("@".join),
        st.text(alphabet=_ATEXT + '.@"\\\\ <>', max_size=20),
    )
)
def test_recipient_addresses_are_read_as_the_email_package_reads_them(addr_spec: str) -> None:
    try:
        expected = Address(display_name="Ann", addr_spec=addr_spec)
    except Exception:
        return  # refused either way (ComposeError): covered by the tests above
    if not expected.username or not expected.domain:
        return  # '""@0': the email package takes an empty local part; we refuse it on purpose
    assert address_of("welcome", addr_spec, "Ann") == expected


def test_list_unsubscribe_stays_a_usable_mailto_link_for_a_long_programme_address() -> None:
    settings = dataclasses.replace(SETTINGS, programme_address="coffee-roulette@unmentoring.example.org")
    notice = welcome(unsubscribe_token="a" * 32)
    rendered = RENDERER.render(notice.kind, notice.values, to=notice.to)
    raw = message_bytes(compose(notice, rendered, settings, Framing("id@example.org"), now=NOW))
    expected = f"<mailto:coffee-roulette@unmentoring.example.org?subject=leave%20{'a' * 32}>"
    assert f"List-Unsubscribe: {expected}".encode() in raw, "one unfolded, unencoded line"
    assert parse(raw)["List-Unsubscribe"] == expected
