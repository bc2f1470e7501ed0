"""Every command, applied through the processor to a real store, with a fake clock.

Messages are realistic raw mail built with EmailMessage; assertions are on the notices (kind,
recipient, values) and on the store.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox.commands.registry import COMMANDS
from inbox.processor import Processor, ProcessResult
from inbox.settings import InboxSettings
from mailkit.addresses import canonical_address, plus_address, return_path
from matcher import tokens
from matcher.clock import FakeClock
from matcher.limits import Limits
from matcher.members import FORMER_MEMBER, find_member
from matcher.model import (
    Group,
    Member,
    MemberStatus,
    Notice,
    OutboxEntry,
    Result,
    Round,
    RoundState,
    Token,
)
from matcher.store import SCHEMA_VERSION, Store

PROGRAMME = "coffee@unmentoring.example.org"
ORGANISERS = ["organiser@unmentoring.example.org"]
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
NEXT_ROUND = date(2026, 2, 2)


def make_message(
    sender: str,
    body: str = "",
    subject: str = "",
    *,
    to: str = PROGRAMME,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = "",
) -> bytes:
    """A plain-text message as a mail client would send it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 05 Jan 2026 10:00:00 +0000"
    if message_id is not None:
        # From `secrets`, not make_msgid: hypothesis seeds `random`, which make_msgid uses.
        msg["Message-ID"] = f"<{message_id or secrets.token_hex(12) + '@mail.example.org'}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return bytes(msg)


@dataclass
class Harness:
    """A programme inbox on a real store: say something, look at what it answered and stored."""

    store: Store
    clock: FakeClock
    settings: InboxSettings
    processor: Processor

    def send(self, raw: bytes) -> ProcessResult:
        with self.store.transaction():
            return self.processor.process(raw)

    def say(self, sender: str, body: str = "", subject: str = "", **options: object) -> ProcessResult:
        return self.send(make_message(sender, body, subject, **options))  # type: ignore[arg-type]

    def reply_as(self, sender: str, body: str = "", subject: str = "", **options: object) -> ProcessResult:
        """``body`` as a reply to an email we sent to ``sender`` alone: proof of their mailbox."""
        address = find_address(sender)
        answered = add_sent(self, f"welcome:{secrets.token_hex(6)}", [address], kind="welcome")
        return self.say(sender, body, subject, in_reply_to=answered, **options)

    def member(self, address: str) -> Member:
        member = find_member(self.store, address)
        assert member is not None, f"no member {address}"
        return member

    def join(self, address: str, name: str = "", org: str = "", about: str = "") -> Member:
        """Join and confirm with `confirm TOKEN`: an active member."""
        lines = ["join"] + [f"{k}: {v}" for k, v in (("name", name), ("org", org), ("about", about)) if v]
        asked = only(self.say(address, "\n".join(lines)), "confirm_join")
        only(self.say(address, f"confirm {asked.values['token']}"), "welcome")
        member = self.member(address)
        assert member.status is MemberStatus.ACTIVE
        return member


def find_address(sender: str) -> str:
    """The address of a From value ("Ann <ann@example.org>")."""
    return canonical_address(sender)


def only(result: ProcessResult, kind: str) -> Notice:
    """The one notice of a result, which must be of ``kind``."""
    assert [n.kind for n in result.notices] == [kind], result.summary
    return result.notices[0]


def make_harness(tmp_path: Path, **settings: object) -> Harness:
    store = Store.open(tmp_path / "db.json")
    clock = FakeClock(START)
    limit_names = {f.name for f in dataclasses.fields(Limits)}
    limits = Limits(**{k: v for k, v in settings.items() if k in limit_names})  # type: ignore[arg-type]
    inbox_settings = InboxSettings(
        programme_address=PROGRAMME,
        organisers=list(ORGANISERS),
        next_round_on=lambda now: NEXT_ROUND,
        limits=limits,
        **{k: v for k, v in settings.items() if k not in limit_names},  # type: ignore[arg-type]
    )
    return Harness(store, clock, inbox_settings, Processor(store, clock, inbox_settings))


def add_round(
    box: Harness, round_id: str, ordinal: int, groups: list[Group], *, closed: bool = False
) -> None:
    starts = date(2026, 1, 5) + timedelta(days=31 * (ordinal - 24312))
    with box.store.transaction():
        box.store.put(
            Round(
                id=round_id,
                ordinal=ordinal,
                starts_on=starts,
                meeting_week_start=starts,
                meeting_week_end=starts + timedelta(days=4),
                followup_on=starts + timedelta(days=7),
                seed=7,
                state=RoundState.CLOSED if closed else RoundState.STARTED,
            )
        )
        for group in groups:
            box.store.put(group)


def add_sent(
    box: Harness,
    key: str,
    recipients: list[str],
    kind: str = "followup",
    group_id: str = "",
    return_token: str = "",
) -> str:
    """An email we sent (as the mailer records it), about ``group_id`` if given; returns its Message-ID."""
    message_id = f"{secrets.token_hex(16)}@unmentoring.example.org"
    with box.store.transaction():
        box.store.put(
            OutboxEntry(
                key=key,
                kind=kind,
                envelope_from=PROGRAMME,
                recipients=recipients,
                message_id=message_id,
                status="sent",
                round_id=group_id.split(":")[0] if group_id else "",
                group_id=group_id,
                return_token=return_token,
            )
        )
    return message_id


def returned_from(box: Harness, address: str, report: bytes) -> bytes:
    """``report`` as it arrives when it bounces an email we sent to ``address``: delivered to that
    email's own return path (VERP), as an MTA writes Delivered-To."""
    token = tokens.new_token_value()
    add_sent(box, f"welcome:{token[:8]}", [address], kind="welcome", return_token=token)
    return f"Delivered-To: {return_path(PROGRAMME, token)}\n".encode() + report


# -- join and its confirmation


def test_join_makes_a_pending_member_and_asks_for_confirmation(box: Harness) -> None:
    result = box.say(
        "Ann Lee <Ann@Example.org>",
        "Join\nname: Ann Lee\norg: Leeds City Council\nabout: Roads and bridges",
        "Joining UnMentoring",
    )
    notice = only(result, "confirm_join")
    member = box.member("ann@example.org")
    assert member.status is MemberStatus.PENDING
    # The profile waits for the confirmation: the record holds nothing the sender wrote.
    assert (member.name, member.org, member.about) == ("", "", "")
    token = box.store.get(Token, notice.values["token"])
    assert token.purpose == "confirm_join" and token.member_id == member.id
    assert token.address == "ann@example.org"
    assert token.command == {
        "fields": {"name": "Ann Lee", "org": "Leeds City Council", "about": "Roads and bridges"}
    }
    assert notice.to == ["ann@example.org"]
    # Nothing the sender wrote is echoed: the greeting and To use the bare address.
    assert notice.values == {"name": "", "token": token.token, "expires_on": date(2026, 1, 12)}
    assert notice.message_id and notice.message_id.endswith("@unmentoring.example.org")
    assert token.message_id == notice.message_id
    assert notice.token == token.token  # the mailer makes Reply-To coffee+<token>@ of it
    assert notice.auto_reply and notice.key.startswith("reply:") and notice.key.endswith(":confirm_join")
    only(box.say("ann@example.org", f"confirm {token.token}"), "welcome")
    member = box.member("ann@example.org")
    assert (member.name, member.org, member.about) == ("Ann Lee", "Leeds City Council", "Roads and bridges")


def test_join_takes_the_name_from_the_from_header_when_none_is_given(box: Harness) -> None:
    asked = only(box.say('"Lee, Ann" <ann@example.org>', "", "subscribe"), "confirm_join")
    only(box.say("ann@example.org", f"confirm {asked.values['token']}"), "welcome")
    assert box.member("ann@example.org").name == "Lee, Ann"


def _confirm_by(path: str, box: Harness, asked: Notice) -> ProcessResult:
    token = asked.values["token"]
    sender = "Ann <ann@example.org>"
    if path == "in-reply-to":
        return box.say(sender, "Yes please!", "Re: Please confirm", in_reply_to=asked.message_id)
    if path == "references":
        return box.say(sender, "ok", "Re: confirm", references=["x@y.example", asked.message_id])
    if path == "plus-address":
        return box.say(sender, "sure", "Re: your email", to=plus_address(PROGRAMME, asked.token))
    if path == "body":
        quoted = f"Yes\n\nOn Monday UnMentoring wrote:\n> To confirm, reply or send: confirm {token}\n"
        return box.say(sender, quoted, "Re: hello")
    assert path == "confirm-command"
    return box.say(sender, f"CONFIRM {token}", "")


@pytest.mark.parametrize("path", ["in-reply-to", "references", "plus-address", "body", "confirm-command"])
def test_join_is_confirmed_by_each_path(box: Harness, path: str) -> None:
    asked = only(box.say("Ann <ann@example.org>", "join"), "confirm_join")
    box.clock.advance(timedelta(hours=2))

    welcome = only(_confirm_by(path, box, asked), "welcome")

    member = box.member("ann@example.org")
    assert member.status is MemberStatus.ACTIVE
    assert member.joined_at == START + timedelta(hours=2)
    assert welcome.to == ["ann@example.org"]
    assert welcome.values == {"name": "Ann", "next_round_on": NEXT_ROUND, "frequency": 1}
    member_token = tokens.valid_member_token(box.store, member, box.clock.now())
    assert member_token is not None and welcome.unsubscribe_token == member_token.token
    assert box.store.get(Token, asked.values["token"]).used_at == box.clock.now()


def test_a_second_confirmation_says_already_active(box: Harness) -> None:
    asked = only(box.say("ann@example.org", "join"), "confirm_join")
    only(box.say("ann@example.org", f"confirm {asked.values['token']}"), "welcome")
    again = only(box.say("ann@example.org", f"confirm {asked.values['token']}"), "already_active")
    assert again.values == {"name": "", "next_round_on": NEXT_ROUND}


def test_an_expired_confirmation_activates_nobody(box: Harness) -> None:
    asked = only(box.say("ann@example.org", "join"), "confirm_join")
    box.clock.advance(timedelta(days=7, seconds=1))
    result = box.say("ann@example.org", "yes", "Re: confirm", in_reply_to=asked.message_id)
    help_ = only(result, "help")
    assert "expired" in help_.values["reason"] and "join" in help_.values["reason"]
    assert find_member(box.store, "ann@example.org") is None  # the sign-up was given up


def test_a_token_of_another_purpose_confirms_nothing(box: Harness) -> None:
    box.join("ann@example.org")
    member_token = tokens.valid_member_token(box.store, box.member("ann@example.org"), START)
    asked = only(box.say("bob@example.org", "join"), "confirm_join")
    assert asked.to == ["bob@example.org"]
    # Bob presents Ann's List-Unsubscribe token as a confirmation: it is not one.
    help_ = only(box.say("bob@example.org", f"confirm {member_token.token}"), "help")
    assert help_.values["reason"] == "no valid confirmation code was found in your message"
    assert box.member("bob@example.org").status is MemberStatus.PENDING
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE


def test_confirm_without_any_code_explains(box: Harness) -> None:
    help_ = only(box.say("ann@example.org", "confirm"), "help")
    assert "confirmation code" in help_.values["reason"]
    assert find_member(box.store, "ann@example.org") is None


def test_a_forged_join_subscribes_nobody(box: Harness) -> None:
    # Mallory writes "join" with Victim's address in From: the confirmation goes to Victim.
    result = box.say("Victim <victim@example.org>", "join", headers={"Sender": "mallory@evil.example"})
    asked = only(result, "confirm_join")
    assert asked.to == ["victim@example.org"]
    assert box.member("victim@example.org").status is MemberStatus.PENDING
    # Mallory guesses at confirmations, and replies without the token: nothing happens.
    for guess in ("confirm", f"confirm {tokens.new_token_value()}", "yes"):
        box.say("victim@example.org", guess, "Re: join")
    assert box.member("victim@example.org").status is MemberStatus.PENDING


def test_join_while_pending_sends_one_confirmation_a_day_and_never_rewrites_the_profile(
    box: Harness,
) -> None:
    first = only(box.say("ann@example.org", "join\nname: Ann Lee"), "confirm_join")
    # A forger's second join the same day: no second email, and the profile it gives goes nowhere.
    assert box.say("Mallory <ann@example.org>", "join\nname: Buy pills at spam.example").notices == []
    assert box.say("ann+2@example.org", "join").notices == []  # the same mailbox, plus-tagged
    box.clock.advance(timedelta(days=1, seconds=1))
    second = only(box.say("ann@example.org", "join\norg: NHS"), "confirm_join")
    assert second.values["token"] != first.values["token"]
    assert box.member("ann@example.org").name == ""
    # The code Ann confirms sets the profile its own join gave.
    only(box.say("ann@example.org", f"confirm {first.values['token']}"), "welcome")
    assert (box.member("ann@example.org").name, box.member("ann@example.org").org) == ("Ann Lee", "")


def test_unconfirmed_sign_ups_are_purged_after_token_days(box: Harness) -> None:
    asked = only(box.say("ann@example.org", "join\nname: Ann"), "confirm_join")
    box.clock.advance(timedelta(days=box.settings.limits.token_days, seconds=1))
    box.say("someone@example.org", "status")  # the day's housekeeping runs with the next message
    assert find_member(box.store, "ann@example.org") is None
    assert box.store.get(Token, asked.values["token"]).command == {}  # the profile it held is gone
    reason = only(box.say("ann@example.org", f"confirm {asked.values['token']}"), "help").values["reason"]
    assert "expired" in reason and find_member(box.store, "ann@example.org") is None


def test_confirmations_are_capped_per_hour_for_the_whole_programme(tmp_path: Path) -> None:
    box = make_harness(tmp_path, confirmations_per_hour=2)
    try:
        sent = [box.say(f"person{n}@example.org", "join").notices for n in range(4)]
        assert [len(n) for n in sent] == [1, 1, 0, 0]
        box.clock.advance(timedelta(hours=1))
        only(box.say("person9@example.org", "join"), "confirm_join")
    finally:
        box.store.close()


def test_join_while_active_says_already_active(box: Harness) -> None:
    box.join("ann@example.org", name="Ann")
    notice = only(box.say("ann@example.org", "join"), "already_active")
    assert notice.values == {"name": "Ann", "next_round_on": NEXT_ROUND}
    assert notice.unsubscribe_token


def test_join_while_paused_resumes(box: Harness) -> None:
    box.join("ann@example.org")
    only(box.reply_as("ann@example.org", "pause"), "paused")
    only(box.reply_as("ann@example.org", "join"), "resumed")
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE
    only(box.reply_as("ann@example.org", "pause"), "paused")
    # Without proof of mailbox, "join" asks the address to confirm the resuming.
    asked = only(box.say("ann@example.org", "join"), "confirm_change")
    assert box.member("ann@example.org").status is MemberStatus.PAUSED
    only(box.say("ann@example.org", "yes", in_reply_to=asked.message_id), "resumed")
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE


def test_joining_again_after_leaving_keeps_the_same_record(box: Harness) -> None:
    ann = box.join("ann@example.org", name="Ann")
    member_token = tokens.valid_member_token(box.store, ann, START)
    only(box.say("ann@example.org", "", f"leave {member_token.token}"), "goodbye")
    box.clock.advance(timedelta(days=1))  # one join confirmation per mailbox a day
    again = box.join("ann@example.org")
    assert again.id == ann.id and again.name == "Ann"
    assert tokens.valid_member_token(box.store, again, box.clock.now()).token != member_token.token


# -- leave


def test_leave_with_the_list_unsubscribe_token_is_immediate(box: Harness) -> None:
    ann = box.join("ann@example.org", name="Ann")
    member_token = tokens.valid_member_token(box.store, ann, START)
    box.clock.advance(timedelta(days=3))
    # What a mail client sends for List-Unsubscribe: <mailto:coffee@...?subject=leave%20TOKEN>
    goodbye = only(box.say("ann@example.org", "", f"leave {member_token.token}"), "goodbye")
    assert goodbye.values == {"name": "Ann"} and goodbye.to == ["ann@example.org"]
    ann = box.member("ann@example.org")
    assert ann.status is MemberStatus.LEFT and ann.left_at == START + timedelta(days=3)
    assert not box.store.get(Token, member_token.token).is_valid(box.clock.now())


def test_leave_in_reply_to_our_mail_is_immediate(box: Harness) -> None:
    ann = box.join("ann@example.org")
    followup = add_sent(box, f"followup:2026-01:1:{ann.id}", ["ann@example.org"])
    only(box.say("ann@example.org", "Stop", "Re: Did you meet?", in_reply_to=followup), "goodbye")
    assert box.member("ann@example.org").status is MemberStatus.LEFT


def test_leave_without_proof_asks_for_confirmation(box: Harness) -> None:
    box.join("ann@example.org", name="Ann")
    asked = only(box.say("ann@example.org", "unsubscribe"), "confirm_leave")
    token = box.store.get(Token, asked.values["token"])
    assert token.purpose == "confirm_leave" and token.message_id == asked.message_id
    assert asked.values == {"name": "Ann", "token": token.token, "expires_on": date(2026, 1, 12)}
    assert asked.token == token.token
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE

    goodbye = only(box.say("ann@example.org", "yes", "Re: x", in_reply_to=asked.message_id), "goodbye")
    assert goodbye.to == ["ann@example.org"]
    assert box.member("ann@example.org").status is MemberStatus.LEFT


def test_leave_confirmed_by_command(box: Harness) -> None:
    box.join("ann@example.org")
    asked = only(box.say("ann@example.org", "leave"), "confirm_leave")
    only(box.say("ann@example.org", f"confirm {asked.values['token']}"), "goodbye")
    assert box.member("ann@example.org").status is MemberStatus.LEFT


def test_a_forged_leave_only_asks_the_real_address(box: Harness) -> None:
    box.join("ann@example.org")
    box.join("bob@example.org")
    bobs = add_sent(box, "reply:x:status", ["bob@example.org"], kind="status")
    # Forged From, and a reply to somebody else's email: no proof for Ann's mailbox.
    asked = only(box.say("ann@example.org", "leave", "Re: status", in_reply_to=bobs), "confirm_leave")
    assert asked.to == ["ann@example.org"]
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE


def test_a_member_token_from_another_address_asks_its_owner(box: Harness) -> None:
    ann = box.join("ann@example.org")
    member_token = tokens.valid_member_token(box.store, ann, START)
    asked = only(box.say("ann.lee@work.example", "", f"leave {member_token.token}"), "confirm_leave")
    assert asked.to == ["ann@example.org"]
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE


def test_leave_from_a_non_member(box: Harness) -> None:
    notice = only(box.say("nobody@example.org", "leave"), "not_member")
    assert notice.values == {"command": "leave"} and notice.to == ["nobody@example.org"]


# -- pause, resume, frequency, profile, status, help


@pytest.mark.parametrize(
    ("text", "until"),
    [
        ("pause", None),
        ("pause 2 months", date(2026, 3, 5)),
        ("Pause until 2027-03-01", date(2027, 3, 1)),
    ],
)
def test_pause(box: Harness, text: str, until: date | None) -> None:
    box.join("ann@example.org", name="Ann")
    notice = only(box.reply_as("ann@example.org", text), "paused")
    assert notice.values == {"name": "Ann", "until": until}
    member = box.member("ann@example.org")
    assert (member.status, member.pause_until) == (MemberStatus.PAUSED, until)


@pytest.mark.parametrize("text", ["pause until yesterday-ish", "pause until 2025-01-01"])
def test_a_pause_that_cannot_be_read_is_explained(box: Harness, text: str) -> None:
    box.join("ann@example.org")
    notice = only(box.say("ann@example.org", text), "help")
    assert notice.values["reason"]
    assert box.member("ann@example.org").status is MemberStatus.ACTIVE


def test_resume(box: Harness) -> None:
    box.join("ann@example.org", name="Ann")
    only(box.reply_as("ann@example.org", "pause 3 months"), "paused")
    notice = only(box.reply_as("ann@example.org", "resume"), "resumed")
    assert notice.values == {"name": "Ann", "next_round_on": NEXT_ROUND}
    member = box.member("ann@example.org")
    assert (member.status, member.pause_until) == (MemberStatus.ACTIVE, None)


@pytest.mark.parametrize(("text", "frequency"), [("frequency 2", 2), ("every 3 months", 3)])
def test_frequency(box: Harness, text: str, frequency: int) -> None:
    box.join("ann@example.org", name="Ann")
    notice = only(box.reply_as("ann@example.org", text), "frequency_changed")
    assert notice.values == {"name": "Ann", "frequency": frequency}
    assert box.member("ann@example.org").frequency == frequency


def test_a_bad_frequency_is_explained(box: Harness) -> None:
    box.join("ann@example.org")
    notice = only(box.say("ann@example.org", "frequency 5"), "help")
    assert "1, 2 or 3" in notice.values["reason"]
    assert box.member("ann@example.org").frequency == 1


def test_profile(box: Harness) -> None:
    box.join("ann@example.org", name="Ann", org="Council")
    notice = only(
        box.reply_as("ann@example.org", "profile\norg: NHS Digital\nabout: Data & <b>dashboards</b>"),
        "profile_updated",
    )
    assert notice.values == {
        "name": "Ann",
        "org": "NHS Digital",
        "about": "Data & <b>dashboards</b>",
    }
    assert box.member("ann@example.org").org == "NHS Digital"


def test_profile_without_lines_is_explained(box: Harness) -> None:
    box.join("ann@example.org", name="Ann")
    assert "name: " in only(box.say("ann@example.org", "profile"), "help").values["reason"]


def test_status(box: Harness) -> None:
    ann = box.join("ann@example.org", name="Ann", org="Council", about="roads")
    bob = box.join("bob@example.org")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)])
    box.say("bob@example.org", "met")
    box.reply_as("ann@example.org", "frequency 2")
    box.reply_as("ann@example.org", "pause until 2026-06-01")
    notice = only(box.say("ann@example.org", "Status?"), "status")
    assert notice.values == {
        "name": "Ann",
        "status": "paused",
        "org": "Council",
        "about": "roads",
        "frequency": 2,
        "pause_until": date(2026, 6, 1),
        "next_round_on": NEXT_ROUND,
        "rounds": 1,
        "met": 1,
    }


def test_help_and_unrecognised_mail(box: Harness) -> None:
    every_command = COMMANDS.help_lines()
    assert only(box.say("ann@example.org", "help"), "help").values == {
        "reason": "",
        "commands": every_command,
    }
    notice = only(box.say("ann@example.org", "Hi, what is this all about?", "Question"), "help")
    assert notice.values == {
        "reason": "it does not start with one of our commands",
        "quoted": "Hi, what is this all about?",
        "suggestion": "",
        "commands": every_command,
    }
    assert notice.to == ["ann@example.org"]


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("pause", "pause"),
        ("resume", "resume"),
        ("frequency 2", "frequency"),
        ("profile\nname: X", "profile"),
        ("status", "status"),
        ("met", "met"),
        ("missed", "missed"),
        ("my data", "my data"),
        ("forget me", "forget me"),
    ],
)
def test_members_only_commands_from_a_stranger(box: Harness, text: str, command: str) -> None:
    notice = only(box.say("stranger@example.org", text), "not_member")
    assert notice.values == {"command": command} and notice.to == ["stranger@example.org"]
    assert find_member(box.store, "stranger@example.org") is None


def test_a_pending_joiner_is_not_yet_a_member(box: Harness) -> None:
    box.say("ann@example.org", "join")
    assert only(box.say("ann@example.org", "status"), "not_member").values == {"command": "status"}


# -- my data and forget me


def test_my_data(box: Harness) -> None:
    ann = box.join("ann@example.org", name="Ann", org="Council")
    bob = box.join("bob@example.org", name="Bob")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=bob.id)])
    box.say("ann@example.org", "missed\nBob was ill")
    notice = only(box.say("ann@example.org", "My data"), "my_data")
    data = notice.values["data"]
    assert data["member"]["address"] == "ann@example.org" and data["member"]["org"] == "Council"
    [group] = data["groups"]
    assert (group["round"], group["partners"], group["host"]) == ("2026-01", ["Bob"], "Bob")
    assert group["your_answer"]["result"] == "missed"
    assert group["your_answer"]["reason"] == "Bob was ill"
    member_token = tokens.valid_member_token(box.store, box.member("ann@example.org"), START)
    assert member_token.token not in repr(data)


def test_forget_me_after_confirmation(box: Harness) -> None:
    ann = box.join("ann@example.org", name="Ann", about="roads")
    bob = box.join("bob@example.org", name="Bob")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)])
    asked = only(box.say("ann@example.org", "Forget me"), "confirm_forget")
    assert asked.values["name"] == "Ann" and asked.values["expires_on"] == date(2026, 1, 12)
    assert not box.store.get(Member, ann.id).erased

    forgotten = only(
        box.say("ann@example.org", "Forget me, please", "Re: x", in_reply_to=asked.message_id),
        "forgotten",
    )

    assert forgotten.to == ["ann@example.org"] and forgotten.values == {}
    erased = box.store.get(Member, ann.id)
    assert erased.erased and (erased.address, erased.name, erased.about) == ("", "", "")
    assert box.store.find(Token, "member_id", ann.id) == []
    assert find_member(box.store, "ann@example.org") is None
    assert box.store.get(Group, "2026-01:1").members == [ann.id, bob.id]
    bobs = only(box.say("bob@example.org", "my data"), "my_data").values["data"]
    assert bobs["groups"][0]["partners"] == [FORMER_MEMBER]
    # The address is a stranger now.
    only(box.say("ann@example.org", "status"), "not_member")


def test_forget_me_needs_the_confirmation(box: Harness) -> None:
    box.join("ann@example.org")
    asked = only(box.say("ann@example.org", "forget me"), "confirm_forget")
    # A new request the same day: no second email to the mailbox (a forger could repeat it).
    assert box.say("ann@example.org", "forget me").notices == []
    # A reply that does not say so explicitly erases nothing: erasure cannot be undone.
    for body, subject in [("No! Keep it.", "Re: Forget me?"), ("", "Re: Confirm: forget me")]:
        result = box.say("ann@example.org", body, subject, in_reply_to=asked.message_id)
        assert "has not been erased" in only(result, "help").values["reason"]
    assert not box.member("ann@example.org").erased
    only(box.say("ann@example.org", f"confirm {asked.values['token']}"), "forgotten")
    assert find_member(box.store, "ann@example.org") is None


# -- met and missed


def test_met_in_reply_to_an_intro_names_that_group(box: Harness) -> None:
    ann = box.join("ann@example.org")
    bob = box.join("bob@example.org")
    cat = box.join("cat@example.org")
    january = Group("2026-01", 1, [ann.id, bob.id], host=ann.id)
    february = Group("2026-02", 1, [ann.id, cat.id], host=cat.id)
    add_round(box, "2026-01", 24312, [january])
    add_round(box, "2026-02", 24313, [february])
    intro = add_sent(box, "intro:2026-01:1", [ann.address, bob.address], kind="intro", group_id=january.key)
    add_sent(box, "intro:2026-02:1", [ann.address, cat.address], kind="intro", group_id=february.key)

    result = box.say("ann@example.org", "Met! Lovely chat.", "Re: intro", in_reply_to=intro)

    assert result.status == "applied" and result.notices == []
    assert box.store.get(Group, "2026-01:1").outcomes[ann.id].result is Result.MET
    assert box.store.get(Group, "2026-02:1").outcomes == {}


def test_missed_in_reply_to_a_followup_names_that_group(box: Harness) -> None:
    ann = box.join("ann@example.org")
    bob = box.join("bob@example.org")
    cat = box.join("cat@example.org")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)])
    add_round(box, "2026-02", 24313, [Group("2026-02", 1, [ann.id, cat.id], host=cat.id)])
    followup = add_sent(box, f"followup:2026-01:1:{ann.id}", ["ann@example.org"], group_id="2026-01:1")

    body = "missed - Bob was off sick all week\nsecond line\n\nOn Mon, UnMentoring wrote:\n> Did you meet?"
    result = box.say("ann@example.org", body, "Re: Did you meet Bob?", in_reply_to=followup)

    assert result.notices == []
    outcome = box.store.get(Group, "2026-01:1").outcomes[ann.id]
    # In the follow-up's thread the answer is read in the member's words: the paragraph is the reason.
    assert (outcome.result, outcome.reason) == (Result.MISSED, "Bob was off sick all week second line")
    assert outcome.at == START
    assert box.store.get(Group, "2026-02:1").outcomes == {}


def test_met_without_threading_goes_to_the_latest_open_group(box: Harness) -> None:
    ann = box.join("ann@example.org")
    bob = box.join("bob@example.org")
    cat = box.join("cat@example.org")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)])
    add_round(box, "2026-02", 24313, [Group("2026-02", 1, [ann.id, cat.id], host=cat.id)])
    assert box.say("ann@example.org", "met").notices == []
    assert box.store.get(Group, "2026-02:1").outcomes[ann.id].result is Result.MET
    assert box.store.get(Group, "2026-01:1").outcomes == {}


def test_missed_reason_is_one_line_of_at_most_500_characters(box: Harness) -> None:
    ann = box.join("ann@example.org")
    bob = box.join("bob@example.org")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)])
    box.say("ann@example.org", "missed " + "x" * 800)
    assert box.store.get(Group, "2026-01:1").outcomes[ann.id].reason == "x" * 500


def test_met_with_no_group_to_attribute(box: Harness) -> None:
    box.join("ann@example.org")
    notice = only(box.say("ann@example.org", "met"), "no_group")
    assert notice.values == {"command": "met"}


def test_met_in_reply_to_a_closed_rounds_intro_is_explained(box: Harness) -> None:
    ann = box.join("ann@example.org")
    bob = box.join("bob@example.org")
    group = Group("2026-01", 1, [ann.id, bob.id], host=ann.id)
    add_round(box, "2026-01", 24312, [group], closed=True)
    intro = add_sent(box, "intro:2026-01:1", [ann.address, bob.address], kind="intro", group_id=group.key)
    notice = only(box.say("ann@example.org", "met", in_reply_to=intro), "help")
    assert "closed" in notice.values["reason"]
    assert box.store.get(Group, "2026-01:1").outcomes == {}


def test_a_schema_1_database_opens_and_replies_still_find_their_groups(tmp_path: Path) -> None:
    """Schema 1 kept a group's intro Message-ID on the group and named the group only inside outbox
    keys; the migration moves both into the outbox entries' round_id / group_id."""
    ann, bob, cat = (
        {"id": f"m-{n}", "address": f"{n}@example.org", "status": "active"} for n in ("ann", "bob", "cat")
    )
    started = {"ordinal": 24312, "starts_on": "2026-01-05", "meeting_week_start": "2026-01-05"}
    started |= {"meeting_week_end": "2026-01-09", "followup_on": "2026-01-12", "seed": 7, "state": "started"}

    def group(number: int, members: list[dict], intro: str) -> dict:
        ids = [m["id"] for m in members]
        return {"round_id": "2026-01", "number": number, "members": ids, "host": ids[0], "outcomes": {}} | {
            "intro_message_id": intro
        }

    def sent(key: str, kind: str, message_id: str) -> dict:
        return {"key": key, "kind": kind, "envelope_from": PROGRAMME, "recipients": [], "status": "sent"} | {
            "message_id": message_id
        }

    old = {
        "meta": {"1": {"schema_version": 1}},
        "members": {str(i): m for i, m in enumerate((ann, bob, cat), start=1)},
        "rounds": {"1": {"id": "2026-01", **started}},
        "groups": {
            "1": group(1, [ann, bob], "intro-1@u.example"),
            "2": group(2, [cat, ann], "intro-2@u.example"),
        },
        # group 2's intro entry is gone: the migration keeps its Message-ID findable all the same
        "outbox": {
            "1": sent("intro:2026-01:1", "intro", "intro-1@u.example"),
            "2": sent("followup:2026-01:1:m-bob", "followup", "followup-1@u.example"),
            "3": sent("reply:abc:welcome", "welcome", "welcome-1@u.example"),
        },
    }
    (tmp_path / "db.json").write_text(json.dumps(old))
    box = make_harness(tmp_path)
    assert box.store.schema_version == SCHEMA_VERSION
    assert box.store.get(OutboxEntry, "intro:2026-01:1").group_id == "2026-01:1"
    assert box.store.get(OutboxEntry, "reply:abc:welcome").group_id == ""

    box.say("bob@example.org", "missed, sorry", "Re: Did you meet?", in_reply_to="followup-1@u.example")
    box.say("ann@example.org", "met", "Re: intro", in_reply_to="intro-1@u.example")
    box.say("cat@example.org", "met", "Re: intro", in_reply_to="intro-2@u.example")

    first, second = (box.store.get(Group, f"2026-01:{n}") for n in (1, 2))
    assert {i: o.result for i, o in first.outcomes.items()} == {"m-bob": Result.MISSED, "m-ann": Result.MET}
    assert {i: o.result for i, o in second.outcomes.items()} == {"m-cat": Result.MET}
