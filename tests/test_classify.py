"""Classification of every sample message in tests/data/mail, plus the rules one by one."""

from __future__ import annotations

import json
import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox.classify import LOOP_HEADER, Classification, Kind, classify
from inbox.grammar import read_command
from inbox.parse import parse_message

MAIL = Path(__file__).parent / "data" / "mail"
EXPECTED: dict[str, dict] = json.loads((MAIL / "expected.json").read_text(encoding="utf-8"))
OWN = ["coffee@unmentoring.example.org"]


def classify_raw(raw: bytes, own=OWN) -> Classification:
    return classify(raw, parse_message(raw), own_addresses=own)


def build(body: str = "met", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = headers.pop("from_", "Ann Example <ann@example.org>")
    msg["To"] = headers.pop("to", "coffee@unmentoring.example.org")
    msg["Subject"] = headers.pop("subject", "Re: Did you meet Bob?")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def test_every_sample_has_an_expectation_and_every_expectation_a_sample():
    assert {p.name for p in MAIL.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name):
    expected = EXPECTED[name]
    raw = (MAIL / name).read_bytes()
    parsed = parse_message(raw)
    result = classify(raw, parsed, own_addresses=OWN)
    assert result.kind == Kind(expected["kind"]), result.reason
    assert result.reason
    if result.kind is Kind.BOUNCE:
        assert result.bounced_addresses == expected["bounced"]
        assert result.permanent is expected["permanent"]
    else:
        assert result.bounced_addresses == []
    command = read_command(parsed)
    if result.kind is Kind.COMMAND:
        assert command is not None
        assert command.name == expected["command"]
        assert command.argument == expected["argument"]
        assert dict(command.fields) == expected.get("fields", {})
    elif result.kind is Kind.NOT_COMMAND:
        assert command is None


# --- bounces -------------------------------------------------------------------------------------


def test_bounce_text_forwarded_by_a_person_is_not_a_bounce():
    body = (
        "FYI, I got this:\n\nHi. This is the qmail-send program at mail.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<colleague@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n"
    )
    result = classify_raw(build(body, subject="Fwd: something odd", Return_Path="<ann@example.org>"))
    assert result.kind is Kind.NOT_COMMAND


def test_mailer_daemon_without_report_is_a_bounce_without_addresses():
    result = classify_raw(build("Something went wrong.", from_="MAILER-DAEMON@mx.example.org"))
    assert (result.kind, result.bounced_addresses, result.permanent) == (Kind.BOUNCE, [], False)


def test_our_own_address_is_never_reported_as_bounced():
    raw = (MAIL / "bounce-exim-550.eml").read_bytes()
    result = classify_raw(raw, own=["j.smith@charity.example.org", *OWN])
    assert result.kind is Kind.BOUNCE
    assert result.bounced_addresses == []


def test_bounce_carrying_a_huge_attachment_is_classified_quickly():
    original = EmailMessage()
    original["From"] = "UnMentoring <coffee@unmentoring.example.org>"
    original["To"] = "gone@example.net"
    original["Subject"] = "Your summary"
    original.set_content("Summary attached")
    original.add_attachment(
        os.urandom(10 * 1024 * 1024), maintype="image", subtype="png", filename="chart.png"
    )
    bounce = EmailMessage()
    bounce["Return-Path"] = "<>"
    bounce["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    bounce["To"] = "coffee@unmentoring.example.org"
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce.set_content(
        "This is the mail system at host mx.example.org.\n\n<gone@example.net>: host "
        "mx.example.net said: 550 5.1.1 User unknown\n"
    )
    bounce.add_attachment(original)
    raw = bounce.as_bytes()
    started = time.perf_counter()
    result = classify_raw(raw)
    elapsed = time.perf_counter() - started
    assert result.kind is Kind.BOUNCE
    assert elapsed < 5, f"classifying a {len(raw) // 2**20} MB bounce took {elapsed:.1f} s"


# --- loops ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        "UnMentoring <coffee@unmentoring.example.org>",
        "COFFEE@Unmentoring.Example.ORG",
        "coffee+leave-abc123@unmentoring.example.org",
    ],
)
def test_mail_from_our_own_address_is_a_loop(sender):
    assert classify_raw(build("help", from_=sender)).kind is Kind.LOOP


def test_own_addresses_are_compared_in_canonical_form():
    raw = build("help", from_="coffee@unmentoring.example.org")
    assert classify_raw(raw, own=["  <Coffee@UnMentoring.example.org> "]).kind is Kind.LOOP


def test_loop_header_marks_a_loop():
    assert classify_raw(build("help", **{LOOP_HEADER: "1"})).kind is Kind.LOOP


def test_colleague_on_our_domain_with_a_local_message_id_is_not_a_loop():
    raw = build(
        "met",
        from_="Pat <pat@unmentoring.example.org>",
        Message_ID="<0a1b2c@unmentoring.example.org>",
    )
    result = classify_raw(raw)
    assert result.kind is Kind.COMMAND


def test_no_own_addresses_means_no_loop_detection_by_address():
    raw = build("met", from_="coffee@unmentoring.example.org")
    assert classify_raw(raw, own=[]).kind is Kind.COMMAND


# --- automatic replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "auto-replied"),
        ("Auto-Submitted", "auto-generated"),
        ("Auto-Submitted", "auto-notified; owner-email=x@example.org"),
        ("X-Autoreply", "yes"),
        ("X-Autorespond", "Re: your mail"),
        ("X-AutoReply-From", "ann@example.org"),
        ("Precedence", "bulk"),
        ("Precedence", "junk"),
        ("Precedence", "auto_reply"),
    ],
)
def test_auto_reply_headers(header, value):
    result = classify_raw(build("met", **{header: value}))
    assert result.kind is Kind.AUTO_REPLY
    assert header.lower() in result.reason.lower()


def test_auto_submitted_no_is_a_person():
    assert classify_raw(build("met", Auto_Submitted="no")).kind is Kind.COMMAND


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Your UnMentoring partner",
        "AutoReply: Did you meet Bob?",
        "Auto: Did you meet Bob?",
        "Out of Office: Re: Did you meet Bob?",
        "Out of office",
        "Réponse automatique : Votre binôme",
        "Absence du bureau: Votre binôme",
        "Automatische Antwort: Ihr Partner",
        "Abwesenheitsnotiz: Ihr Partner",
        "Respuesta automática: Tu compañero",
        "Fuera de la oficina: Tu compañero",
        "Automatisch antwoord: Uw partner",
        "Afwezig: Uw partner",
        "Resposta automática: O seu par",
        "Ausente do escritório: O seu par",
    ],
)
def test_auto_reply_subjects(subject):
    assert classify_raw(build("met", subject=subject)).kind is Kind.AUTO_REPLY


def test_out_of_office_phrase_inside_a_persons_subject_is_not_an_auto_reply():
    result = classify_raw(build("pause until 1 March", subject="Out of office until March - pause"))
    assert result.kind is Kind.COMMAND


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@service.example.com",
        "no-reply@service.example.com",
        "No_Reply@service.example.com",
        "do-not-reply@service.example.com",
        "donotreply@service.example.com",
        "noreply-calendar@service.example.com",
    ],
)
def test_no_reply_senders(sender):
    result = classify_raw(build("join", from_=sender))
    assert result.kind is Kind.AUTO_REPLY
    assert "no-reply" in result.reason


def test_message_without_usable_sender_is_never_answered():
    raw = b"From: nobody\nSubject: help\n\nhelp\n"
    assert classify_raw(raw).kind is Kind.AUTO_REPLY


# --- lists ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("List-Id", "<news.example.org>"),
        ("List-Post", "<mailto:news@example.org>"),
        ("List-Unsubscribe", "<mailto:leave@example.org>"),
        ("List-Help", "<mailto:help@example.org>"),
        ("Precedence", "list"),
        ("Mailing-List", "contact news-help@example.org; run by ezmlm"),
    ],
)
def test_list_mail(header, value):
    assert classify_raw(build("join", **{header: value})).kind is Kind.LIST


# --- order of the rules --------------------------------------------------------------------------


def test_bounce_comes_before_auto_reply_and_list():
    raw = (MAIL / "bounce-postfix-550.eml").read_bytes()
    assert b"Auto-Submitted: auto-replied" in raw
    assert classify_raw(raw).kind is Kind.BOUNCE


def test_loop_comes_before_auto_reply():
    raw = build("x", from_="coffee@unmentoring.example.org", Auto_Submitted="auto-generated")
    assert classify_raw(raw).kind is Kind.LOOP


def test_auto_reply_comes_before_list():
    raw = build("x", Precedence="bulk", List_Id="<l.example.org>")
    assert classify_raw(raw).kind is Kind.AUTO_REPLY


def test_human_mail_with_and_without_command():
    assert classify_raw(build("met")).kind is Kind.COMMAND
    assert classify_raw(build("Thanks!")).kind is Kind.NOT_COMMAND


# --- robustness ----------------------------------------------------------------------------------


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "truncate", "duplicate"]),
        st.floats(min_value=0, max_value=1),
        st.integers(min_value=1, max_value=300),
        st.binary(min_size=1, max_size=30),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MAIL.glob("*.eml"))), MUTATIONS)
def test_classify_never_raises_on_mutated_samples(path, mutations):
    data = bytearray(path.read_bytes())
    for action, where, size, payload in mutations:
        at = int(where * len(data))
        if action == "delete":
            del data[at : at + size]
        elif action == "insert":
            data[at:at] = payload
        elif action == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + size]
    result = classify_raw(bytes(data))
    assert isinstance(result.kind, Kind)
    assert all("@" in address for address in result.bounced_addresses)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_classify_never_raises_on_random_bytes(raw):
    assert isinstance(classify_raw(raw).kind, Kind)
