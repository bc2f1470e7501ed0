"""What goes into a header and what comes out: encoded words decoded at input and never written,
address headers that folding cannot change, and the read-back check before the outbox stores a message.

End to end through the sandbox: tests/test_mail_boundary.py. Here: each function, and the property
tests over arbitrary text (hypothesis).
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import unicodedata
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer import compose as compose_module
from mailer.compose import ReadBackError, outgoing_bytes
from mailer.headers import Framing
from mailer.read_back import ReadBackMismatch, check_read_back, intended
from mailer.render import KINDS, Renderer
from mailkit.addresses import address_header_text, mailbox
from mailkit.header_text import decoded_one_line, one_line, unstructured_header_text
from matcher.model import Notice
from tests.test_compose import NOW, PNG, SETTINGS
from tests.test_outbox import Rig, intro, rig, welcome  # noqa: F401  (rig: the fixture)
from tests.test_render import SAMPLE_VALUES

RENDERER = Renderer(SETTINGS)
_BREAKERS = "\r\n\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\t"


def b_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def q_word(text: str) -> str:
    return "=?utf-8?q?" + "".join(f"={byte:02X}" for byte in text.encode("utf-8")) + "?="


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def is_clean(text: str) -> bool:
    return "=?" not in text and not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in text)


# -- mailkit.header_text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "kept"),
    [
        (b_word("Eve\r\nBcc: v@evil.test"), "Eve Bcc: v@evil.test"),
        (q_word("a\x00b\u2028c\x85d"), "a b c d"),
        (f"{b_word('Zo')} {q_word('ë')}", "Zoë"),  # adjacent words join (RFC 2047 6.2)
        (b_word(b_word(b_word("deep"))), "deep"),
        ("=?utf-8?q?broken", "= ?utf-8?q?broken"),
        ("=?unknown-charset?q?x?=", "x"),
        ("plain  text\twith\r\nbreaks", "plain text with breaks"),
        ("", ""),
    ],
)
def test_input_text_is_decoded_and_made_one_clean_line(received: str, kept: str) -> None:
    assert decoded_one_line(received) == kept


def test_output_text_keeps_no_encoded_word_opening() -> None:
    assert one_line("=?utf-8?q?x?=") == "= ?utf-8?q?x?="
    assert one_line(" Ann\u2028\r\n Example ") == "Ann Example"


_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=_BREAKERS + "=?qQbB_ abcé\u00e9<>,\"'@", max_size=60),
    st.lists(st.text(max_size=20).map(b_word) | st.text(max_size=20).map(q_word), max_size=4).map(" ".join),
    st.text(max_size=30).map(lambda t: b_word(b_word(t))),
)


@settings(max_examples=500, deadline=None)
@given(_TEXT)
def test_no_text_read_or_written_holds_an_encoded_word_or_a_control(text: str) -> None:
    for made in (decoded_one_line(text), one_line(text)):
        assert is_clean(made) and made == made.strip() and "  " not in made


# -- mailkit.addresses.address_header_text ------------------------------------------------------

_NAME = st.one_of(
    st.text(max_size=120),
    st.text(alphabet="abc XYZ,<>\"'@;:.()[]\\=?é", max_size=150),
    st.just("Averyveryveryverylongdisplaynamewithlotsoftext, attacker@evil.test <x@y.z>, more filler"),
).map(one_line)


@settings(max_examples=500, deadline=None)
@given(st.lists(_NAME, min_size=1, max_size=4))
def test_an_address_header_reads_back_as_exactly_its_mailboxes(names: list[str]) -> None:
    addresses = tuple(mailbox(name, f"m{n}@example.org") for n, name in enumerate(names))
    value = address_header_text("Reply-To", addresses)
    raw = f"Reply-To: {value}\r\n\r\n".encode("ascii")
    read = parse(raw)["Reply-To"].addresses
    assert [a.addr_spec for a in read] == [a.addr_spec for a in addresses]
    # Python 3.11 keeps the space between two encoded words (RFC 2047 drops it): spaces aside.
    assert ["".join(a.display_name.split()) for a in read] == ["".join(n.split()) for n in names]
    for line in raw.decode("ascii").split("\r\n"):
        # Only a plain word longer than a line (it cannot be broken) makes a longer line.
        assert len(line) <= 78 or " " not in line.strip() or max(map(len, line.split())) > 60


def test_a_name_that_needs_quoting_is_written_as_encoded_words_never_quoted() -> None:
    value = address_header_text(
        "To", (mailbox("Smith, John", "j@example.org"), mailbox("Bob", "b@example.org"))
    )
    assert value == "=?utf-8?q?Smith=2C_John?= <j@example.org>, Bob <b@example.org>"


# -- the property: every built message reads back exactly -----------------------------------------

_FIELD = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=_BREAKERS + 'abc ,<>"@;:=?é', max_size=60),
    st.text(max_size=30).map(b_word),
    st.text(max_size=30).map(q_word),
    st.text(alphabet="xyz, <>@", min_size=70, max_size=200),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_FIELD, _FIELD, _FIELD), min_size=2, max_size=3), _FIELD)
def test_every_built_message_reads_back_with_exactly_its_recipients_and_headers(
    people: list[tuple[str, str, str]], programme_name: str
) -> None:
    addresses = [f"p{n}@example.org" for n in range(len(people))]
    members = [
        {"name": name, "org": org, "about": about, "address": address}
        for (name, org, about), address in zip(people, addresses, strict=True)
    ]
    notice = Notice(
        "intro",
        addresses,
        dict(SAMPLE_VALUES["intro"], members=members, host=people[0][0]),
    )
    settings_ = SETTINGS.__class__(**{**SETTINGS.__dict__, "programme_name": programme_name})
    rendered = Renderer(settings_).render("intro", notice.values, to=addresses)
    raw = outgoing_bytes(
        notice, rendered, settings_, Framing("id-1@example.org", reply_to=tuple(addresses)), now=NOW
    )
    assert raw.isascii()
    msg = parse(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == addresses
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == addresses
    assert [a.addr_spec for a in msg["From"].addresses] == [SETTINGS.programme_address]
    assert sorted(k.lower() for k in msg.keys()) == sorted(
        [
            "subject",
            "from",
            "to",
            "reply-to",
            "date",
            "message-id",
            "auto-submitted",
            "list-id",
            "list-unsubscribe",
            "x-unmentoring-kind",
            "mime-version",
            "content-type",
        ]
    )
    assert [p.get_content_type() for p in msg.walk()] == ["multipart/alternative", "text/plain", "text/html"]
    assert is_clean(str(msg["Subject"]))
    # CPython's folder may drop a space between two non-ASCII words where it breaks the line.
    assert "".join(str(msg["Subject"]).split()) == "".join(one_line(rendered.subject).split())


# -- item 2: MIME-Version on top of every kind ---------------------------------------------------


@pytest.mark.parametrize("with_images", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_top_level_mime_version(kind: str, with_images: bool) -> None:
    # The summary's HTML shows its charts: it always has them.
    images = {cid: PNG for cid in SAMPLE_VALUES[kind].get("images", [])} | (
        {"chart": PNG} if with_images else {}
    )
    notice = Notice(kind, ["alice@example.org"], dict(SAMPLE_VALUES[kind]))
    rendered = RENDERER.render(kind, notice.values, to=notice.to)
    raw = outgoing_bytes(notice, rendered, SETTINGS, Framing("id-2@example.org", images=images), now=NOW)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nMIME-Version: 1.0\r\n" in head
    msg = parse(raw)
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    expected = "multipart/mixed" if images else "multipart/alternative"
    assert msg.get_content_type() == expected


# -- the read-back check ------------------------------------------------------------------------


def _built() -> tuple[bytes, object]:
    notice = welcome()
    rendered = RENDERER.render("welcome", notice.values, to=notice.to)
    msg, meant = compose_module._compose(notice, rendered, SETTINGS, Framing("id-3@example.org"), now=NOW)
    return bytes(msg), meant


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda raw: raw.replace(b"\r\nFrom:", b"\r\nBcc: victim@evil.test\r\nFrom:", 1), "headers"),
        (
            lambda raw: raw.replace(
                b"Alice <alice@example.org>", b"Alice, victim@evil.test <alice@example.org>"
            ),
            "to",
        ),
        (lambda raw: raw.replace(b"Subject: Welcome", b"Subject: Farewell", 1), "subject"),
        (lambda raw: raw.replace(b"Hi Alice", b"Hi Mallory", 1), "part's content"),
    ],
)
def test_a_message_that_reads_back_differently_is_refused_naming_what_differs(change, named: str) -> None:
    raw, meant = _built()
    check_read_back("welcome", raw, meant)  # as built: fine
    changed = change(raw)
    assert changed != raw
    with pytest.raises(ReadBackMismatch, match=rf"^welcome: .*{named}"):
        check_read_back("welcome", changed, meant)


def test_intended_comes_from_what_was_built_not_from_the_message() -> None:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content("body")
    meant = intended(msg, {"from": (), "to": (Address("A", "a", "b.c"),), "reply-to": ()}, "x")
    assert meant.mailboxes["to"] == (("A", "a@b.c"),) and meant.headers[0] == "subject"


def test_a_bug_in_building_is_reported_and_nothing_is_sent(
    rig: Rig,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Simulated: the address header writer lets a Bcc through, as the email package does today."""
    written = compose_module.address_header_text
    monkeypatch.setattr(
        compose_module,
        "address_header_text",
        lambda name, addresses: (
            written(name, addresses) + ("\r\nBcc: victim@evil.test" if name == "To" else "")
        ),
    )
    with caplog.at_level(logging.ERROR, logger="mailer.outbox"):
        (entry,) = rig.queue(welcome("buggy"))
    assert entry.status == "failed" and entry.last_error.startswith("welcome: ")
    assert "reads back wrong" in entry.last_error and "bcc" in entry.last_error
    assert any("BUG" in r.getMessage() and "buggy" in r.getMessage() for r in caplog.records)
    report = rig.deliver()
    assert report.sent == 0 and rig.sink.messages == []
    notice = welcome()
    rendered = RENDERER.render("welcome", notice.values, to=notice.to)
    with pytest.raises(ReadBackError, match="reads back wrong"):
        outgoing_bytes(notice, rendered, SETTINGS, Framing("id-4@example.org"), now=NOW)


@pytest.mark.parametrize(
    "subject",
    [
        "00000000000000000000000000000000000000000000000000: meet ¡ 𐀀 𐀀 ¡ and a fellow member",
        "𐀀" * 60,
        "Did you meet Siân Llŷr-Jones, Zoë O'Brien and 李小龍 this month? " * 3,
        "A plain ASCII subject that is long enough to need folding at least once or twice, surely " * 2,
        "= ? not an encoded word, and a tab-free line",
    ],
)
def test_a_subject_is_folded_by_us_and_reads_back_exactly(subject: str) -> None:
    """The email package on Python 3.11 can split an encoded word inside a 4-byte character when it
    folds a Subject; ours never does."""
    value = unstructured_header_text("Subject", subject)
    assert value.isascii() and all(len(line) <= 998 for line in value.split("\r\n"))
    raw = f"Subject: {value}\r\n\r\n".encode("ascii")
    read = str(parse(raw)["subject"])
    assert "".join(read.split()) == "".join(subject.split())
