"""Parsing raw inbound mail: headers, addresses, charsets, encodings, HTML, reply stripping, and
staying total and fast on malformed and huge input."""

from __future__ import annotations

import email.policy
import os
import random
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox.parse import (
    MAX_FULL_TEXT_CHARS,
    MAX_REPLY_CHARS,
    ParsedMessage,
    message_key,
    parse_message,
)
from inbox.reply_text import strip_reply
from mailkit.addresses import canonical_address
from mailkit.header_text import decoded_one_line

MAIL = Path(__file__).parent / "data" / "mail"
SAMPLES = sorted(MAIL.glob("*.eml"))


def sample(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def plain(body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = headers.pop("from_", "Ann Example <ann@example.org>")
    msg["To"] = "coffee@unmentoring.example.org"
    msg["Subject"] = headers.pop("subject", "Re: hello")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


# --- headers and addresses -----------------------------------------------------------------------


def test_gmail_reply_headers_are_read():
    parsed = parse_message(sample("reply-gmail-met.eml"))
    assert parsed.message_id == "CAF9kz0sN8=a7Pq2dX+Wm1bVhKp4Lr0tC6eJ9fQx@mail.gmail.com"
    assert parsed.sender == "bob.jones.example@gmail.com"
    assert parsed.sender_name == "Bob Jones"
    assert parsed.envelope_sender == "bob.jones.example@gmail.com"
    assert parsed.subject == "Re: Did you meet Alice Brown?"
    assert parsed.in_reply_to == ["174168360001.3305.5555@unmentoring.example.org"]
    assert parsed.headers["x-gm-features"] == "AQ5f1JqXyZ"
    assert parsed.raw_size == len(sample("reply-gmail-met.eml"))


def test_plus_address_of_the_reply_is_among_recipients():
    parsed = parse_message(sample("reply-gmail-met.eml"))
    # Canonical addresses are lowercased, so plus-address tokens must be case-insensitive.
    assert parsed.to == ["coffee+followup-zx81kq2lmp0@unmentoring.example.org"]


def test_recipients_come_from_to_cc_and_delivered_to_without_duplicates():
    raw = (
        b"From: a@example.org\r\nTo: Coffee <Coffee@Unmentoring.example.org>, b@example.org\r\n"
        b"Cc: c@example.org, b@example.org\r\nDelivered-To: coffee+abc@unmentoring.example.org\r\n"
        b"Subject: x\r\n\r\nmet\r\n"
    )
    assert parse_message(raw).to == [
        "coffee@unmentoring.example.org",
        "b@example.org",
        "c@example.org",
        "coffee+abc@unmentoring.example.org",
    ]


def test_thread_ids_put_in_reply_to_first_then_references_newest_first():
    raw = (
        b"From: a@example.org\r\nIn-Reply-To: <c@x.example>\r\n"
        b"References: <a@x.example> <b@x.example>\r\n <c@x.example>\r\n\r\nmet\r\n"
    )
    assert parse_message(raw).in_reply_to == ["c@x.example", "b@x.example", "a@x.example"]


def test_encoded_headers_are_decoded():
    parsed = parse_message(sample("reply-shift-jis-help.eml"))
    assert parsed.subject == "Re: 質問"
    assert parsed.sender_name == "田中 花子"
    parsed = parse_message(sample("autoreply-subject-fr.eml"))
    assert parsed.subject == "Réponse automatique\xa0: Your UnMentoring partner for March"
    assert parsed.sender_name == "Claire Martin"


def test_raw_eight_bit_headers_are_read_as_utf8():
    raw = "From: José <jose@example.es>\nSubject: Actualización\n\nmet\n".encode()
    parsed = parse_message(raw)
    assert parsed.subject == "Actualización"
    assert parsed.sender_name == "José"


@pytest.mark.parametrize(
    ("return_path", "expected"),
    [
        ("<>", ""),
        ("<MAILER-DAEMON>", ""),
        ("<Bounce+X@Example.org>", "bounce+x@example.org"),
    ],
)
def test_envelope_sender_from_return_path(return_path, expected):
    raw = f"Return-Path: {return_path}\nFrom: a@example.org\nSubject: x\n\nbody\n".encode()
    assert parse_message(raw).envelope_sender == expected


def test_no_return_path_means_unknown_envelope_sender():
    assert parse_message(plain("met")).envelope_sender is None


def test_headers_map_lowercase_names_to_first_value():
    raw = b"Received: one\nReceived: two\nX-Custom: Value\nSubject: s\n\nbody\n"
    headers = parse_message(raw).headers
    assert headers["received"] == "one"
    assert headers["x-custom"] == "Value"


_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_ATOM = st.text(alphabet=_ATEXT, min_size=1, max_size=6)
_DOT_ATOM = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_PLAIN = st.tuples(st.lists(_ATOM, max_size=3).map(" ".join), _DOT_ATOM, _DOT_ATOM).map(
    lambda parts: f"{parts[0]} <{parts[1]}@{parts[2]}>" if parts[0] else f"{parts[1]}@{parts[2]}"
)
_NEAR_MISS = st.text(alphabet=_ATEXT + ' .@<>"(),;:\\\té=?', max_size=30)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_PLAIN, _NEAR_MISS))
def test_the_sender_is_read_as_the_email_package_reads_from(value):
    """Plain "Name <local@domain>" values take a shortcut past the header parser: whatever the
    value, the sender must be what the email package reads (its first usable address), the name
    made one line without encoded words (mailkit.header_text)."""
    try:
        header = email.policy.default.header_factory("from", value)
    except Exception:
        return  # the parser gives up: another reading (getaddresses) applies
    readings = [
        (a.display_name, canonical_address(a.addr_spec))
        for a in header.addresses
        if canonical_address(a.addr_spec)
    ]
    if not header.addresses:
        return  # the parser found nothing: another reading (getaddresses) applies
    parsed = parse_message(f"From: {value}\r\nSubject: x\r\n\r\nmet\r\n".encode())
    expected = readings[0] if readings else ("", "")
    assert (parsed.sender_name, parsed.sender) == (decoded_one_line(expected[0]), expected[1])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["Subject", "Auto-Submitted", "X-Autoreply", "Precedence", "Content-Type"]),
    st.one_of(
        st.text(alphabet=[chr(c) for c in range(32, 127)] + ["\t", "é", "€"], max_size=40),
        st.sampled_from(["=?utf-8?q?Caf=C3=A9?=", "Re: =?iso-8859-1?q?R=E9ponse?= ok", "=?UTF-8?B?w6k=?= x"]),
    ),
)
def test_header_values_are_decoded_as_the_email_package_decodes_them(name, value):
    """Plain text values are read without the header parser: the result must be the same."""
    try:
        expected = str(email.policy.default.header_factory(name.lower(), value))
    except Exception:
        expected = value  # what the reader falls back to
    raw = f"From: a@example.org\r\n{name}: {value}\r\n\r\nmet\r\n".encode()
    headers = parse_message(raw).headers
    if name.lower() in headers:
        assert headers[name.lower()] == expected.strip()


def test_message_key_is_message_id_else_hash_of_bytes():
    with_id = plain("met", Message_ID="<abc@example.org>")
    assert message_key(with_id, parse_message(with_id)) == "abc@example.org"
    without = b"From: a@example.org\nSubject: x\n\nmet\n"
    key = message_key(without, parse_message(without))
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    assert key == message_key(without, parse_message(without))
    assert key != message_key(without + b"\n", parse_message(without + b"\n"))


def test_message_id_without_brackets_is_kept():
    raw = b"Message-ID: bare-id@example.org\nFrom: a@example.org\n\nx\n"
    assert parse_message(raw).message_id == "bare-id@example.org"


# --- bodies: charsets, transfer encodings, HTML --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_text"),
    [
        ("reply-quoted-printable-missed.eml", "Missed — he was on annual leave 🌴"),
        ("reply-base64-status.eml", "Status?"),
        ("reply-windows-1252-met.eml", "Met – “great chat” about procurement.\n\nBob"),
        ("reply-unknown-charset-met.eml", "met — très bien, merci"),
        ("reply-outlook-missed.eml", "Missed - she was ill, we’ll try again next month."),
        ("autoreply-subject-pt.eml", "Estou ausente do escritório até 10 de março."),
    ],
)
def test_bodies_are_decoded(name, expected_text):
    assert parse_message(sample(name)).text == expected_text


def test_iso_8859_1_body():
    text = parse_message(sample("reply-iso-8859-1-profile.eml")).text
    assert "name: José Núñez" in text
    assert "about: Trabajo en administración electrónica; ¡hablemos!" in text


def test_shift_jis_body():
    text = parse_message(sample("reply-shift-jis-help.eml")).text
    assert text.splitlines()[0] == "help"
    assert "よろしくお願いします。" in text


def test_declared_ascii_with_eight_bit_bytes_is_read_as_utf8():
    raw = b"From: a@example.org\nContent-Type: text/plain; charset=us-ascii\n\nmet \xe2\x80\x94 ok\n"
    assert parse_message(raw).text == "met — ok"


def test_missing_charset_falls_back_to_utf8_then_windows_1252():
    utf8 = b"From: a@example.org\nContent-Type: text/plain\n\ncaf\xc3\xa9\n"
    cp1252 = b"From: a@example.org\nContent-Type: text/plain\n\ncaf\xe9 \x93ok\x94\n"
    assert parse_message(utf8).text == "café"
    assert parse_message(cp1252).text == "café “ok”"


def test_non_text_codec_names_are_not_used_as_charsets():
    raw = b"From: a@example.org\nContent-Type: text/plain; charset=base64\n\nbWV0\n"
    assert parse_message(raw).text == "bWV0"


def test_html_only_mail_is_turned_into_text_without_the_quote():
    parsed = parse_message(sample("reply-html-only-met.eml"))
    assert parsed.text == "MET – thanks, it was really useful.\n\nLi"
    assert "<p>" not in parsed.full_text
    assert "Did you meet Sam Patel" in parsed.full_text


def test_outlook_web_html_reply_drops_the_header_block():
    assert (
        parse_message(sample("reply-outlook-web-html-met.eml")).text
        == "Met. Lovely chat – we're meeting again in April."
    )


def test_plain_text_is_preferred_over_html():
    text = parse_message(sample("reply-gmail-met.eml")).text
    assert text == "Met!\n\nGreat conversation about digital inclusion, thanks for setting it up."


def test_empty_plain_part_falls_back_to_html():
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg.set_content("   \n")
    msg.add_alternative("<p>pause 2 months</p>", subtype="html")
    assert parse_message(msg.as_bytes()).text == "pause 2 months"


def test_text_attachments_are_not_read_as_the_body():
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg.set_content("met")
    msg.add_attachment("forget me\n", filename="notes.txt")
    parsed = parse_message(msg.as_bytes())
    assert parsed.text == "met"
    assert "forget me" not in parsed.full_text


def test_attached_message_is_not_the_senders_text():
    inner = EmailMessage()
    inner["From"] = "someone@example.org"
    inner.set_content("leave")
    outer = EmailMessage()
    outer["From"] = "a@example.org"
    outer.set_content("")
    outer.add_attachment(inner)
    assert parse_message(outer.as_bytes()).text == ""


def test_format_flowed_lines_are_joined():
    text = parse_message(sample("reply-thunderbird-flowed-missed.eml")).text
    assert text == (
        "missed: we booked a time but the video link failed and then we were both away at "
        "conferences for the rest of the week"
    )


def test_format_flowed_with_delsp():
    raw = (
        b"From: a@example.org\nContent-Type: text/plain; format=flowed; delsp=yes\n\n"
        b"missed - the train was can \ncelled\n"
    )
    assert parse_message(raw).text == "missed - the train was cancelled"


# --- reply stripping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Gmail, header wrapped over two lines
        (
            "Met!\n\nOn Tue, 11 Mar 2025 at 09:00, UnMentoring <coffee@x.example>\nwrote:\n> hi",
            "Met!",
        ),
        # Thunderbird
        ("met\n\nOn 04/03/2025 09:12, UnMentoring wrote:\n> Hi Dave,\n", "met"),
        # Apple Mail, header itself quoted, after the signature
        (
            "Pause\n\nSent from my iPhone\n\n> On 4 Mar 2025, at 09:12, X <x@y.example> wrote:",
            "Pause",
        ),
        # Outlook desktop block
        (
            "Missed\n\nFrom: UnMentoring <c@x.example>\nSent: 11 March 2025 09:00\nTo: Bob\n"
            "Subject: Did you meet Alice?\n\nHi Bob",
            "Missed",
        ),
        # old Outlook
        ("status\n\n-----Original Message-----\nFrom: c@x.example\nSent: today\n\nhelp", "status"),
        # Outlook mobile separator
        ("resume\n\nGet Outlook for iOS\n________________________________\nFrom: x", "resume"),
        ("resume\n________________________________\nFrom: x\nSent: y\n", "resume"),
        # signatures
        ("leave\n-- \nJane Doe\nHead of Policy", "leave"),
        ("met\n\nKind regards,\nBob\n", "met"),
        ("met\n\nMit freundlichen Grüßen\nAnna", "met"),
        # French, German, Spanish, Dutch, Portuguese reply headers
        ("met\n\nLe mar. 11 mars 2025 à 09:00, UnMentoring <c@x.example> a écrit :\n> q", "met"),
        ("met\n\nAm 11.03.2025 um 09:00 schrieb UnMentoring <c@x.example>:\n> q", "met"),
        (
            "met\n\nEl mar, 11 mar 2025 a las 9:00, UnMentoring (<c@x.example>) escribió:\n> q",
            "met",
        ),
        ("met\n\nOp di 11 mrt 2025 om 09:00 schreef UnMentoring <c@x.example>:\n> q", "met"),
        (
            "met\n\nEm ter., 11 de mar. de 2025 às 09:00, UnMentoring <c@x.example> escreveu:\n> q",
            "met",
        ),
        ("met\n\nVon: UnMentoring <c@x.example>\nGesendet: Dienstag\nAn: Anna\nBetreff: x", "met"),
        # a name-only "X wrote:" followed by a quote
        ("met\n\nUnMentoring wrote:\n> Did you meet Alice?", "met"),
        # bottom-posted and interleaved replies keep the unquoted lines
        ("On Tue, 11 Mar 2025, UnMentoring <c@x.example> wrote:\n> Did you meet?\n\nmet\n", "met"),
        ("> Did you meet Alice?\nmissed\n> Why?\nshe was ill", "missed\nshe was ill"),
        # a forward without a comment has no text of the sender's own
        ("---------- Forwarded message ---------\nFrom: UnMentoring <c@x.example>\n\nmet", ""),
        # hyphen lists are content, not signatures
        ("missed\n- she was ill\n- then I was away", "missed\n- she was ill\n- then I was away"),
        # "wrote:" inside ordinary prose is not a header
        ("I wrote: nothing yet", "I wrote: nothing yet"),
    ],
)
def test_strip_reply(body, expected):
    assert strip_reply(body) == expected


def test_parsed_text_strips_but_full_text_keeps_the_quote():
    parsed = parse_message(sample("reply-top-posted-signature-leave.eml"))
    assert parsed.text == "unsubscribe"
    assert "This month you are meeting Alice Brown." in parsed.full_text


# --- malformed, huge, and arbitrary input --------------------------------------------------------


def test_malformed_message_still_yields_its_readable_parts():
    parsed = parse_message(sample("malformed-broken-mime.eml"))
    assert parsed.sender == "omar.k@health.example.net"
    assert parsed.message_id is None
    assert parsed.in_reply_to == []
    assert parsed.text == "met!"
    assert parsed.headers["date"] == "yesterday-ish"
    assert "coffee@unmentoring.example.org" in parsed.to


def test_unparseable_from_gives_empty_sender():
    parsed = parse_message(sample("malformed-garbage-from.eml"))
    assert parsed.sender == ""
    assert parsed.text == "met"


@pytest.mark.parametrize("raw", [b"", b"\x00" * 100, b"\n\n\n", b"From:", b"Subject: only\n"])
def test_degenerate_input_gives_an_empty_message(raw):
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    assert parsed.sender == ""
    assert parsed.raw_size == len(raw)


def test_deeply_nested_multipart_does_not_crash():
    depth = 3000
    parts = [b"From: a@example.org\n"]
    for level in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n'.encode())
    parts.append(b"Content-Type: text/plain\n\nmet\n")
    parsed = parse_message(b"".join(parts))
    assert isinstance(parsed, ParsedMessage)
    assert parsed.sender == "a@example.org"


def test_huge_attachment_is_handled_quickly():
    msg = EmailMessage()
    msg["From"] = "Big Sender <big@example.org>"
    msg["To"] = "coffee@unmentoring.example.org"
    msg["Subject"] = "Re: Did you meet Alice?"
    msg.set_content("met\n")
    msg.add_attachment(
        os.urandom(20 * 1024 * 1024),
        maintype="application",
        subtype="octet-stream",
        filename="slides.bin",
    )
    raw = msg.as_bytes()
    started = time.perf_counter()
    parsed = parse_message(raw)
    elapsed = time.perf_counter() - started
    assert parsed.text == "met"
    assert parsed.raw_size == len(raw) > 20 * 1024 * 1024
    assert elapsed < 5, f"parsing a 27 MB message took {elapsed:.1f} s"


def test_huge_text_body_is_capped():
    body = "met\n" + ("This is a very long message body line.\n" * 200_000)
    raw = plain(body)
    started = time.perf_counter()
    parsed = parse_message(raw)
    elapsed = time.perf_counter() - started
    assert parsed.text.startswith("met\n")
    assert len(parsed.text) <= MAX_REPLY_CHARS
    assert len(parsed.full_text) <= MAX_FULL_TEXT_CHARS
    assert elapsed < 5, f"parsing an 8 MB text body took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "text",
    [
        "On 1 wrote " * 5000 + ":",
        "\n".join(["On 1 wrote " * 90 + ":"] * 10),
        "From: x\n" * 20000,
        "- a\n" * 25000,
        "Thanks, x\n" * 10000,
        "\n" * 100000,
    ],
)
def test_pathological_bodies_are_stripped_quickly(text):
    started = time.perf_counter()
    strip_reply(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 2, f"reply stripping took {elapsed:.1f} s"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_parse_never_raises_on_random_bytes(raw):
    parsed = parse_message(raw)
    assert parsed.raw_size == len(raw)
    assert isinstance(parsed.text, str) and isinstance(parsed.full_text, str)
    assert parsed.sender == "" or "@" in parsed.sender


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "flip", "duplicate", "truncate"]),
        st.floats(min_value=0, max_value=1),
        st.integers(min_value=1, max_value=400),
        st.binary(min_size=1, max_size=40),
    ),
    min_size=1,
    max_size=6,
)


def mutate(raw: bytes, mutations) -> bytes:
    data = bytearray(raw)
    for action, where, size, payload in mutations:
        at = int(where * len(data))
        if action == "delete":
            del data[at : at + size]
        elif action == "insert":
            data[at:at] = payload
        elif action == "flip" and data:
            index = min(at, len(data) - 1)
            data[index] = (data[index] + size) % 256
        elif action == "duplicate":
            data[at:at] = data[at : at + size]
        elif action == "truncate":
            del data[at:]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), MUTATIONS)
def test_parse_never_raises_on_mutated_real_messages(path, mutations):
    raw = mutate(path.read_bytes(), mutations)
    parsed = parse_message(raw)
    assert parsed.raw_size == len(raw)
    assert message_key(raw, parsed)


def test_parse_never_raises_on_shuffled_lines_of_every_sample():
    rng = random.Random(20250304)
    for path in SAMPLES:
        lines = path.read_bytes().splitlines(keepends=True)
        for _ in range(5):
            rng.shuffle(lines)
            assert isinstance(parse_message(b"".join(lines)), ParsedMessage)
