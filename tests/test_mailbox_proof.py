"""Attacks by an outsider or a group partner with only an email client (issue 11 items 3, 4, 5),
driven through the product's own sandbox SMTP server: the attacker's mail goes in over SMTP, the
service runs (`unmentoring tick`, `round start`), and what it sent is read back from the Maildirs
as a mail client would. Each test says what the attack was and what must (not) happen.
"""

from __future__ import annotations

import re
import secrets
import smtplib
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from mailkit.addresses import return_path_token
from tests.helpers.cli_env import PROGRAMME_ADDRESS, CliEnv, maildir_messages, messages_of_kind
from unmentoring.sandbox import SandboxServer

ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.net"
REPORT = Path(__file__).parent / "data" / "mail" / "bounce-postfix-550.eml"


def send(
    env: CliEnv,
    sender: str,
    body: str,
    *,
    subject: str = "",
    rcpt: str = PROGRAMME_ADDRESS,
    in_reply_to: str = "",
    envelope_from: str | None = None,
) -> None:
    """What a mail client (or a forger's script) hands to the sandbox SMTP server."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = PROGRAMME_ADDRESS
    message["Subject"] = subject
    message["Message-ID"] = f"<{secrets.token_hex(8)}@client.example>"
    if in_reply_to:
        message["In-Reply-To"] = message["References"] = in_reply_to
    message.set_content(body)
    deliver(env, bytes(message), rcpt, envelope_from if envelope_from is not None else sender)


def deliver(env: CliEnv, raw: bytes, rcpt: str, envelope_from: str) -> None:
    with smtplib.SMTP("127.0.0.1", env.sandbox_port, timeout=10) as client:
        client.sendmail(envelope_from, [rcpt], raw)


def status_of(env: CliEnv, address: str) -> str:
    return next(m["status"] for m in env.members() if m["address"] == address)


def mail(env: CliEnv, address: str, kind: str) -> list[EmailMessage]:
    return messages_of_kind(env.mailbox(address), kind)


def addresses(message: EmailMessage, header: str) -> list[str]:
    return [a.lower() for _, a in getaddresses([str(v) for v in message.get_all(header) or []])]


def two_members_introduced(env: CliEnv) -> tuple[EmailMessage, EmailMessage]:
    env.ok("members", "add", ALICE)
    env.ok("members", "add", BOB)
    env.ok("round", "start")
    [alices], [bobs] = mail(env, ALICE, "intro"), mail(env, BOB, "intro")
    return alices, bobs


def bounce_report(failed: str, report_id: str) -> bytes:
    """A real Postfix report (tests/data/mail) naming ``failed``, as its MTA would write it."""
    raw = REPORT.read_bytes().split(b"\n", 2)[2]  # without the trace lines the sandbox writes itself
    raw = raw.replace(b"old.member@council.example.org", failed.encode())
    raw = raw.replace(b"coffee@unmentoring.example.org", PROGRAMME_ADDRESS.encode())
    raw = raw.replace(b"20250304091231.4Z1Xy23abcz9sWQ", report_id.encode())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # SMTP lines end in CRLF


# -- item 4: proof of mailbox is per recipient


def test_each_member_gets_their_own_copy_of_the_introduction(env: CliEnv, sandbox: SandboxServer) -> None:
    alices, bobs = two_members_introduced(env)
    for copy in (alices, bobs):
        assert sorted(addresses(copy, "To")) == sorted(addresses(copy, "Reply-To")) == [ALICE, BOB]
    assert alices["Message-ID"] != bobs["Message-ID"]
    assert alices["List-Unsubscribe"] != bobs["List-Unsubscribe"]
    # The envelope: one recipient each (the sandbox's Delivered-To), each its own return path.
    assert addresses(alices, "Delivered-To") == [ALICE] and addresses(bobs, "Delivered-To") == [BOB]
    paths = [addresses(copy, "Return-Path")[0] for copy in (alices, bobs)]
    assert all(return_path_token(p, PROGRAMME_ADDRESS) for p in paths) and paths[0] != paths[1]
    # The footer does not tell them to reply "pause": replies go to their partner.
    text = alices.get_body(("plain",)).get_content()
    assert 'Reply "pause"' not in text and f'Email "pause" to {PROGRAMME_ADDRESS}' in text


def test_a_partner_replying_leave_to_the_intro_cannot_unsubscribe_you(
    env: CliEnv, sandbox: SandboxServer
) -> None:
    """Attack: Bob answers his copy of the introduction with "leave", From: Alice (forged)."""
    _, bobs = two_members_introduced(env)
    send(env, ALICE, "leave", subject=f"Re: {bobs['Subject']}", in_reply_to=bobs["Message-ID"])
    env.ok("tick")
    assert status_of(env, ALICE) == "active"  # result: not unsubscribed
    [asked] = mail(env, ALICE, "confirm_leave")  # the real Alice is asked, at her own address
    assert addresses(asked, "To") == [ALICE] and mail(env, MALLORY, "confirm_leave") == []
    # Bob's own "leave" in reply to his own copy proves his mailbox: he leaves at once.
    send(env, BOB, "leave", subject=f"Re: {bobs['Subject']}", in_reply_to=bobs["Message-ID"])
    env.ok("tick")
    assert status_of(env, BOB) == "left" and len(mail(env, BOB, "goodbye")) == 1


def test_the_intro_list_unsubscribe_works_in_one_step_for_its_recipient_only(
    env: CliEnv, sandbox: SandboxServer
) -> None:
    alices, bobs = two_members_introduced(env)
    link = re.search(r"<(mailto:[^>]+)>", str(alices["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
    target, query = urlsplit(link).path, dict(p.split("=", 1) for p in urlsplit(link).query.split("&"))
    # Bob replays Alice's link from his own address: it cannot make her (or him) leave at once.
    send(env, BOB, "", subject=unquote(query["subject"]), rcpt=target)
    env.ok("tick")
    assert status_of(env, ALICE) == "active" and status_of(env, BOB) == "active"
    assert len(mail(env, BOB, "confirm_leave")) == 1  # his own leave, unproven: he is asked
    # Alice's mail client uses it: one step, she has left.
    send(env, ALICE, "", subject=unquote(query["subject"]), rcpt=target)
    env.ok("tick")
    assert status_of(env, ALICE) == "left" and status_of(env, BOB) == "active"


@pytest.mark.parametrize("command", ["pause", "frequency 3", "profile\norg: Spam Inc", "forget me"])
def test_a_forged_change_is_only_a_confirmation_to_the_real_address(
    env: CliEnv, sandbox: SandboxServer, command: str
) -> None:
    """Attack: Mallory writes a command that changes Alice's membership, From: Alice."""
    env.ok("members", "add", ALICE)
    before = next(m for m in env.members() if m["address"] == ALICE)
    send(env, ALICE, command, envelope_from=MALLORY)
    env.ok("tick")
    assert next(m for m in env.members() if m["address"] == ALICE) == before  # result: nothing changed
    kinds = [m["X-UnMentoring-Kind"] for m in maildir_messages(env.mailbox(ALICE))]
    assert kinds[-1] in ("confirm_change", "confirm_forget"), kinds
    assert "Spam Inc" not in str(maildir_messages(env.mailbox(ALICE))[-1])  # nothing of hers echoed
    assert maildir_messages(env.mailbox(MALLORY)) == []


# -- item 3: bounces that are ours to count


def test_forged_bounces_to_the_programme_address_never_count(env: CliEnv, sandbox: SandboxServer) -> None:
    """Attack: Mallory sends Postfix-style reports saying Alice's mailbox does not exist."""
    two_members_introduced(env)
    for n in range(4):
        deliver(env, bounce_report(ALICE, f"forged{n}"), PROGRAMME_ADDRESS, "")
    env.ok("tick")
    assert status_of(env, ALICE) == "active"  # result: nothing scored, nothing answered
    assert messages_of_kind(env.mailbox("organiser@localhost"), "bounce_disabled") == []
    assert [m["X-UnMentoring-Kind"] for m in maildir_messages(env.mailbox(ALICE))] == ["welcome", "intro"]


def test_a_report_returned_to_the_return_path_we_issued_counts(env: CliEnv, sandbox: SandboxServer) -> None:
    alices, _ = two_members_introduced(env)
    return_path = addresses(alices, "Return-Path")[0]
    for n in range(3):  # Alice's server refuses the introduction, and says so to its envelope sender
        deliver(env, bounce_report(ALICE, f"real{n}"), return_path, "")
    env.ok("tick")
    assert status_of(env, ALICE) == "disabled" and status_of(env, BOB) == "active"


def test_a_report_sent_to_the_from_address_counts_when_it_quotes_our_message(
    env: CliEnv, sandbox: SandboxServer
) -> None:
    """Servers that ignore the envelope: the report quotes the Message-ID of Alice's own copy."""
    alices, bobs = two_members_introduced(env)
    for n, copy in enumerate([bobs, bobs, bobs]):  # quoting Bob's copy names the wrong person: no count
        report = bounce_report(ALICE, f"q{n}").replace(
            b"<174107955012.3305.1234@unmentoring.example.org>", str(copy["Message-ID"]).encode()
        )
        deliver(env, report, PROGRAMME_ADDRESS, "")
    env.ok("tick")
    assert status_of(env, ALICE) == "active"
    for n in range(3):
        report = bounce_report(ALICE, f"r{n}").replace(
            b"<174107955012.3305.1234@unmentoring.example.org>", str(alices["Message-ID"]).encode()
        )
        deliver(env, report, PROGRAMME_ADDRESS, "")
    env.ok("tick")
    assert status_of(env, ALICE) == "disabled"


# -- item 5: forged joins


def test_a_forged_join_echoes_nothing_and_cannot_be_repeated(env: CliEnv, sandbox: SandboxServer) -> None:
    """Attack: Mallory signs the victim up with a profile of his own words, again and again, and
    with plus-address variants of the victim's mailbox."""
    victim = "victim@example.org"
    spam = "Cheap pills at spam.example"
    send(env, f"{spam} <{victim}>", f"join\nname: {spam}\nabout: {spam}", envelope_from=MALLORY)
    for variant in (victim, "victim+1@example.org", "victim+2@example.org"):
        send(env, variant, f"join\nname: Real {spam}", envelope_from=MALLORY)
    env.ok("tick")
    received = maildir_messages(env.mailbox(victim))
    plus = maildir_messages(env.mailbox("victim+1@example.org")) + maildir_messages(
        env.mailbox("victim+2@example.org")
    )
    assert len(received) == 1 and plus == []  # one confirmation a day for the mailbox
    [asked] = received
    assert str(asked["To"]) == victim  # the bare address: no name Mallory wrote
    text = asked.get_body(("plain",)).get_content()
    assert spam not in text and spam not in str(asked) and f"Hi {victim}," in text
    # The real person confirms by replying: the profile is what their confirmed join held.
    send(env, victim, "yes", in_reply_to=asked["Message-ID"], rcpt=addresses(asked, "Reply-To")[0])
    env.ok("tick")
    assert status_of(env, victim) == "active"
