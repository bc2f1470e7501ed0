"""Applying one inbound message to the store: what a person asked for, or what a bounce tells us.

Returns plain data: the notices to send (see /work/briefs/notices.md for kinds and values) and a
short description of what was done for the log. Never sends, never opens a transaction (the
processor runs a whole message in one) and never raises on bad input: a command that cannot be
applied gets a clear answer instead (help with a reason, not_member, no_group).

Who may do what, given that a From header can be forged:
- join needs a confirmation (double opt-in), so a forged join subscribes nobody;
- leave happens at once only with proof of the mailbox (a token we sent, or a reply to one of our
  emails sent to that address); without it the real address is asked to confirm; forget me is
  always confirmed;
- a token acts on the address it was issued to, whoever sends it back: knowing it proves that
  someone read our mail to that address. The permanent member token (List-Unsubscribe) is
  long-lived, so it acts at once only when it comes back from its own address;
- the other commands (pause, profile, met...) are low-stakes and answered to the member's address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from inbox.classify import Classification
from inbox.grammar import Command, parse_frequency, parse_pause
from inbox.parse import ParsedMessage
from inbox.settings import InboxSettings
from mailkit.addresses import canonical_address
from mailkit.message_ids import is_usable_message_id, new_message_id
from matcher import members as ops
from matcher import tokens
from matcher.model import Group, Member, MemberStatus, Notice, OutboxEntry, Result, Token
from matcher.rounds import RoundClosed, RoundError, latest_open_group, record_outcome
from matcher.store import Store

log = logging.getLogger(__name__)

# A forged "join" flood must not turn us into a mail cannon aimed at someone else's mailbox.
MAX_CONFIRMATIONS_PER_DAY = 3
MAX_REFERENCES = 10
# Senders that are machines: never answered, whatever the classification said.
_MACHINE_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply"}
)
_COMMAND_WORDS = {"my_data": "my data", "forget_me": "forget me"}
_PURPOSE_OF_COMMAND = {
    "join": tokens.CONFIRM_JOIN,
    "leave": tokens.CONFIRM_LEAVE,
    "forget_me": tokens.CONFIRM_FORGET,
}
_OUTCOME_KEY_KINDS = ("followup", "reminder")
FORGET_NOT_EXPLICIT = (
    "your data has not been erased: to confirm, reply to our email with the words 'forget me'"
)
_AGAIN = {
    tokens.CONFIRM_JOIN: "join",
    tokens.CONFIRM_LEAVE: "leave",
    tokens.CONFIRM_FORGET: "forget me",
}


@dataclass
class Applied:
    notices: list[Notice] = field(default_factory=list)
    action: str = ""  # what was done, for the log; never a token
    changed: bool = True  # False: the message was ignored (nothing done, nothing said)


@dataclass(frozen=True)
class _Message:
    """One human message being applied, with what every step needs."""

    store: Store
    settings: InboxSettings
    now: datetime
    parsed: ParsedMessage
    key: str
    command: Command | None

    @property
    def sender(self) -> str:
        return self.parsed.sender

    @property
    def today(self) -> date:
        return self.settings.today(self.now)


# -- bounces


def apply_bounce(
    store: Store, settings: InboxSettings, now: datetime, classification: Classification
) -> Applied:
    """A bounce: +1 to each bounced member's score if permanent; disable at the threshold and tell
    the organisers. Temporary failures are only logged. Never answered."""
    addresses = [a for a in (canonical_address(x) for x in classification.bounced_addresses) if a]
    if not classification.permanent:
        log.info("temporary delivery failure for %d address(es); nothing counted", len(addresses))
        return Applied(action=f"temporary bounce, {len(addresses)} address(es)", changed=False)
    scored, notices = count_permanent_bounces(store, settings, now, addresses)
    if not scored:
        return Applied(action="permanent bounce for no known member", changed=False)
    return Applied(
        notices=notices,
        action=f"permanent bounce: {scored} member(s) scored, {len(notices)} disabled",
    )


def count_permanent_bounces(
    store: Store, settings: InboxSettings, now: datetime, addresses: list[str]
) -> tuple[int, list[Notice]]:
    """+1 to each member's bounce score (whether a bounce message or an SMTP refusal told us); returns how
    many members were scored and the notices telling the organisers about newly disabled addresses."""
    notices: list[Notice] = []
    scored = 0
    for address in dict.fromkeys(addresses):
        member = ops.find_member(store, address)
        if member is None:
            continue
        member, disabled = ops.record_bounce(store, member, settings.bounce_threshold)
        scored += 1
        if disabled:
            notices.append(
                Notice(
                    kind="bounce_disabled",
                    to=list(settings.organisers),
                    values={
                        "address": member.address,
                        "name": member.name,
                        "score": member.bounce_score,
                    },
                    key=f"bounce_disabled:{member.id}:{settings.today(now).isoformat()}",
                )
            )
    return scored, notices


# -- human mail


def apply_message(
    store: Store,
    settings: InboxSettings,
    now: datetime,
    parsed: ParsedMessage,
    command: Command | None,
    key: str,
) -> Applied:
    """Apply a person's message (classified as human mail). ``key`` is the message key (dedup)."""
    refusal = _reason_not_to_answer(parsed, settings)
    if refusal:
        return Applied(action=f"ignored: {refusal}", changed=False)
    msg = _Message(store, settings, now, parsed, key, command)
    found = _tokens_of(msg)
    if _is_confirmation(command, found):
        return _confirm(msg, found)
    if command is None:
        return Applied([_notice_to_sender(msg, "help", {"reason": ""})], "unrecognised: help sent")
    handler = _HANDLERS.get(command.name)
    if handler is None:
        notice = _notice_to_sender(msg, "help", {"reason": ""})
        return Applied([notice], f"unknown command {command.name}: help sent")
    return handler(msg, found)


def _reason_not_to_answer(parsed: ParsedMessage, settings: InboxSettings) -> str:
    """Why this message must not be answered, even though classification let it through."""
    if not parsed.sender:
        return "no usable sender address"
    local, _, domain = parsed.sender.rpartition("@")
    if local in _MACHINE_LOCAL_PARTS:
        return "machine sender"
    own_local, _, own_domain = settings.address.rpartition("@")
    if domain == own_domain and (local == own_local or local.startswith(own_local + "+")):
        return "our own address"
    auto = parsed.headers.get("auto-submitted", "").strip().lower()
    if auto and not auto.startswith("no"):
        return "auto-submitted"
    return ""


# -- tokens


def _tokens_of(msg: _Message) -> list[Token]:
    """Every stored token the message carries, by every path, most explicit first: the command's
    argument, a plus-address it was sent to, the email it replies to, then anywhere in its text."""
    candidates: list[str] = []
    if msg.command is not None:
        candidates += tokens.tokens_in_text(msg.command.argument)
    for address in msg.parsed.to:
        value = tokens.token_from_plus_address(address, msg.settings.address)
        if value:
            candidates.append(value)
    found = tokens.lookup_tokens(msg.store, candidates)
    for mid in msg.parsed.in_reply_to[:MAX_REFERENCES]:
        for token in msg.store.find(Token, "message_id", mid):
            if all(token.token != t.token for t in found):
                found.append(token)
    text = f"{msg.parsed.subject}\n{msg.parsed.full_text}"
    for token in tokens.lookup_tokens(msg.store, tokens.tokens_in_text(text)):
        if all(token.token != t.token for t in found):
            found.append(token)
    return found


def _is_confirmation(command: Command | None, found: list[Token]) -> bool:
    """A message confirms when it carries a confirmation token and asks for nothing else: a bare
    reply ("yes"), "confirm", a command read only from the subject ("Re: Please confirm..."), or the
    very command being confirmed ("leave" in reply to the leave confirmation)."""
    purposes = {t.purpose for t in found} & tokens.CONFIRM_PURPOSES
    if not purposes:
        return False
    if command is None or command.name == "confirm" or command.from_subject:
        return True
    return _PURPOSE_OF_COMMAND.get(command.name) in purposes


def _confirm(msg: _Message, found: list[Token]) -> Applied:
    confirming = [t for t in found if t.purpose in tokens.CONFIRM_PURPOSES]
    if msg.command is not None and msg.command.name in _PURPOSE_OF_COMMAND:
        wanted = _PURPOSE_OF_COMMAND[msg.command.name]
        confirming = [t for t in confirming if t.purpose == wanted] or confirming
    for token in confirming:
        if not token.is_valid(msg.now):
            continue
        member = msg.store.get(Member, token.member_id)
        if member is None or member.erased or member.address != token.address:
            continue
        if token.purpose == tokens.CONFIRM_JOIN:
            return _confirm_join(msg, token, member)
        if token.purpose == tokens.CONFIRM_LEAVE:
            return _leave_now(msg, member, "leave confirmed: left")
        if not _says_forget(msg.command):
            return Applied([_help(msg, FORGET_NOT_EXPLICIT, member)], "forget me not confirmed")
        return _forget_now(msg, member)
    return _explain_unusable(msg, confirming)


def _says_forget(command: Command | None) -> bool:
    """Erasure cannot be undone, so a bare reply ("no, keep it!") must not trigger it: the text of
    the reply itself has to say "confirm" or "forget me" (a subject line is not enough)."""
    return command is not None and not command.from_subject and command.name in ("confirm", "forget_me")


def _explain_unusable(msg: _Message, confirming: list[Token]) -> Applied:
    """A confirmation that cannot be used: say why (expired, used) so they know what to do."""
    if not confirming:
        return Applied(
            [_help(msg, "no valid confirmation code was found in your message")],
            "confirm without a code: help sent",
        )
    token = confirming[0]
    if token.used_at is not None:
        member = msg.store.get(Member, token.member_id)
        if (
            token.purpose == tokens.CONFIRM_JOIN
            and member is not None
            and member.status is MemberStatus.ACTIVE
        ):
            return Applied(
                [_reply(msg, "already_active", member, _already_active_values(msg, member))],
                "confirmation used again: already active",
            )
        return Applied([_help(msg, "that confirmation code has already been used")], "confirmation reused")
    if not token.is_valid(msg.now):
        again = _AGAIN[token.purpose]
        reason = f"that confirmation code has expired; send '{again}' again for a new one"
        return Applied([_help(msg, reason)], "confirmation expired: help sent")
    return Applied(
        [_help(msg, "that confirmation code is no longer valid")],
        "confirmation for a changed member",
    )


def _confirm_join(msg: _Message, token: Token, member: Member) -> Applied:
    tokens.mark_used(msg.store, token, msg.now)
    if ops.is_member(member):
        return Applied(
            [_reply(msg, "already_active", member, _already_active_values(msg, member))],
            "join confirmed again: already active",
        )
    member = ops.activate(msg.store, member, msg.now)
    tokens.member_token(msg.store, member, msg.now)
    values = {
        "name": member.name,
        "next_round_on": msg.settings.next_round_on(msg.now),
        "frequency": member.frequency,
    }
    return Applied([_reply(msg, "welcome", member, values)], "join confirmed: active")


def _leave_now(msg: _Message, member: Member, action: str) -> Applied:
    if member.status is MemberStatus.LEFT:
        return Applied([_not_member(msg, "leave", to=member.address)], "leave: had already left")
    # The goodbye carries no unsubscribe token: leaving retires it.
    goodbye = _reply(msg, "goodbye", member, {"name": member.name})
    ops.mark_left(msg.store, member, msg.now)
    return Applied([goodbye], action)


def _forget_now(msg: _Message, member: Member) -> Applied:
    address = member.address
    ops.erase(msg.store, member, msg.now)
    notice = _notice(msg, "forgotten", address, {})
    return Applied([notice], "forget me confirmed: personal data erased")


# -- commands


def _join(msg: _Message, found: list[Token]) -> Applied:
    member = ops.find_member(msg.store, msg.sender)
    if member is not None and ops.is_member(member):
        if member.status is MemberStatus.ACTIVE:
            values = _already_active_values(msg, member)
            return Applied([_reply(msg, "already_active", member, values)], "join: already active")
        # Paused or disabled: "join" can only mean "I want to be in again".
        return _resume_member(msg, member, f"join while {member.status.value}: resumed")
    fields = dict(msg.command.fields) if msg.command else {}
    if "name" not in fields and not (member and member.name) and msg.parsed.sender_name:
        fields["name"] = msg.parsed.sender_name
    resend = member is not None and member.status is MemberStatus.PENDING
    if resend and _confirmations_today(msg, member) >= MAX_CONFIRMATIONS_PER_DAY:
        log.info("join: confirmation not re-sent, %d already sent today", MAX_CONFIRMATIONS_PER_DAY)
        ops.start_joining(msg.store, msg.sender, fields, msg.now)
        return Applied(action="join while pending: confirmation limit reached, none sent")
    member = ops.start_joining(msg.store, msg.sender, fields, msg.now)
    notice = _confirmation(msg, member, tokens.CONFIRM_JOIN, "confirm_join")
    return Applied([notice], "join while pending: confirmation re-sent" if resend else "join: pending")


def _confirmations_today(msg: _Message, member: Member | None) -> int:
    if member is None:
        return 0
    since = msg.now - timedelta(days=1)
    return sum(
        1
        for t in msg.store.find(Token, "member_id", member.id)
        if t.purpose == tokens.CONFIRM_JOIN and t.created_at > since
    )


def _confirm_command(msg: _Message, found: list[Token]) -> Applied:
    # Reached only when no confirmation token came with the message (see _is_confirmation).
    return _explain_unusable(msg, [])


def _leave(msg: _Message, found: list[Token]) -> Applied:
    member = ops.find_member(msg.store, msg.sender)
    if member is not None and member.status is not MemberStatus.LEFT:
        if _proves_mailbox(msg, member, found):
            return _leave_now(msg, member, "left at once (token or reply to our mail)")
        return Applied(
            [_confirmation(msg, member, tokens.CONFIRM_LEAVE, "confirm_leave")],
            "leave without proof: confirmation sent",
        )
    # A member token from another address: ask its owner, at their own address, to confirm.
    for token in found:
        if token.purpose == tokens.MEMBER and token.is_valid(msg.now):
            owner = msg.store.get(Member, token.member_id)
            if owner is not None and ops.is_member(owner) and owner.address == token.address:
                return Applied(
                    [_confirmation(msg, owner, tokens.CONFIRM_LEAVE, "confirm_leave")],
                    "leave with a member token from another address: owner asked to confirm",
                )
    return Applied([_not_member(msg, "leave")], "leave from a non-member")


def _proves_mailbox(msg: _Message, member: Member, found: list[Token]) -> bool:
    """The message shows it came from someone who reads ``member``'s mail: it carries a token we
    sent to that address, or it replies to one of our emails sent to that address."""
    for token in found:
        if token.address == member.address and token.member_id == member.id:
            if token.purpose == tokens.MEMBER and not token.is_valid(msg.now):
                continue
            return True
    for mid in msg.parsed.in_reply_to[:MAX_REFERENCES]:
        entry = msg.store.find_one(OutboxEntry, "message_id", mid)
        if entry is not None and member.address in {canonical_address(r) for r in entry.recipients}:
            return True
    return False


def _pause(msg: _Message, found: list[Token]) -> Applied:
    member = _member_or_none(msg)
    if member is None:
        return Applied([_not_member(msg, "pause")], "pause from a non-member")
    try:
        until = parse_pause(_argument(msg), msg.today)
    except ValueError as exc:
        return Applied([_help(msg, str(exc), member)], "pause not understood: help sent")
    member = ops.pause(msg.store, member, until)
    return Applied(
        [_reply(msg, "paused", member, {"name": member.name, "until": until})],
        f"paused until {until.isoformat()}" if until else "paused until resumed",
    )


def _resume(msg: _Message, found: list[Token]) -> Applied:
    member = _member_or_none(msg)
    if member is None:
        return Applied([_not_member(msg, "resume")], "resume from a non-member")
    return _resume_member(msg, member, "resumed")


def _resume_member(msg: _Message, member: Member, action: str) -> Applied:
    member = ops.resume(msg.store, member)
    values = {"name": member.name, "next_round_on": msg.settings.next_round_on(msg.now)}
    return Applied([_reply(msg, "resumed", member, values)], action)


def _frequency(msg: _Message, found: list[Token]) -> Applied:
    member = _member_or_none(msg)
    if member is None:
        return Applied([_not_member(msg, "frequency")], "frequency from a non-member")
    try:
        frequency = parse_frequency(_argument(msg))
    except ValueError as exc:
        return Applied([_help(msg, str(exc), member)], "frequency not understood: help sent")
    member = ops.set_frequency(msg.store, member, frequency)
    values = {"name": member.name, "frequency": member.frequency}
    return Applied([_reply(msg, "frequency_changed", member, values)], f"frequency {frequency}")


def _profile(msg: _Message, found: list[Token]) -> Applied:
    member = _member_or_none(msg)
    if member is None:
        return Applied([_not_member(msg, "profile")], "profile from a non-member")
    try:
        member = ops.update_profile(msg.store, member, msg.command.fields if msg.command else {})
    except ops.MemberError as exc:
        return Applied([_help(msg, str(exc), member)], "profile without fields: help sent")
    values = {"name": member.name, "org": member.org, "about": member.about}
    return Applied([_reply(msg, "profile_updated", member, values)], "profile updated")


def _status(msg: _Message, found: list[Token]) -> Applied:
    member = _member_or_none(msg)
    if member is None:
        return Applied([_not_member(msg, "status")], "status from a non-member")
    rounds, met = ops.history_counts(msg.store, member)
    values = {
        "name": member.name,
        "status": member.status.value,
        "org": member.org,
        "about": member.about,
        "frequency": member.frequency,
        "pause_until": member.pause_until,
        "next_round_on": msg.settings.next_round_on(msg.now),
        "rounds": rounds,
        "met": met,
    }
    return Applied([_reply(msg, "status", member, values)], "status sent")


def _help_command(msg: _Message, found: list[Token]) -> Applied:
    return Applied([_notice_to_sender(msg, "help", {"reason": ""})], "help sent")


def _my_data(msg: _Message, found: list[Token]) -> Applied:
    # Anyone we hold data about may have it, whatever their status (pending and left included).
    member = ops.find_member(msg.store, msg.sender)
    if member is None:
        return Applied([_not_member(msg, "my_data")], "my data from an unknown address")
    values = {"data": ops.member_data(msg.store, member)}
    return Applied([_reply(msg, "my_data", member, values)], "my data sent")


def _forget_me(msg: _Message, found: list[Token]) -> Applied:
    member = ops.find_member(msg.store, msg.sender)
    if member is None:
        return Applied([_not_member(msg, "forget_me")], "forget me from an unknown address")
    return Applied(
        [_confirmation(msg, member, tokens.CONFIRM_FORGET, "confirm_forget")],
        "forget me: confirmation sent",
    )


def _outcome(msg: _Message, found: list[Token]) -> Applied:
    assert msg.command is not None
    name = msg.command.name
    member = ops.find_member(msg.store, msg.sender)
    if member is None or member.status is MemberStatus.PENDING:
        return Applied([_not_member(msg, name)], f"{name} from a non-member")
    group = _group_named_by_reply(msg, member) or latest_open_group(msg.store, member.id)
    if group is None:
        return Applied([_notice_to_sender(msg, "no_group", {"command": name})], f"{name}: no group")
    result = Result.MET if name == "met" else Result.MISSED
    reason = _argument(msg) if result is Result.MISSED else ""
    try:
        record_outcome(msg.store, group.key, member.id, result, reason, msg.now)
    except RoundClosed:
        reason_text = f"round {group.round_id} has closed, so answers for it can no longer be recorded"
        return Applied([_help(msg, reason_text, member)], f"{name} for a closed round")
    except RoundError as exc:
        log.warning("%s could not be recorded: %s", name, exc)
        return Applied([_notice_to_sender(msg, "no_group", {"command": name})], f"{name}: no group")
    return Applied(action=f"{name} recorded for group {group.key}")


def _group_named_by_reply(msg: _Message, member: Member) -> Group | None:
    """The group whose intro, follow-up or reminder this message answers, if the member is in it."""
    for mid in msg.parsed.in_reply_to[:MAX_REFERENCES]:
        group = msg.store.find_one(Group, "intro_message_id", mid)
        if group is None:
            entry = msg.store.find_one(OutboxEntry, "message_id", mid)
            group_key = _group_key_of_entry(entry) if entry is not None else None
            group = msg.store.get(Group, group_key) if group_key else None
        if group is not None and member.id in group.members:
            return group
    return None


def _group_key_of_entry(entry: OutboxEntry) -> str | None:
    """ "followup:<round>:<n>:<member>" / "reminder:..." / "intro:<round>:<n>" -> "<round>:<n>"."""
    parts = entry.key.split(":")
    if parts[0] in _OUTCOME_KEY_KINDS and len(parts) == 4 or parts[0] == "intro" and len(parts) == 3:
        return f"{parts[1]}:{parts[2]}"
    return None


_HANDLERS = {
    "join": _join,
    "confirm": _confirm_command,
    "leave": _leave,
    "pause": _pause,
    "resume": _resume,
    "frequency": _frequency,
    "profile": _profile,
    "status": _status,
    "help": _help_command,
    "my_data": _my_data,
    "forget_me": _forget_me,
    "met": _outcome,
    "missed": _outcome,
}


# -- notices


def _member_or_none(msg: _Message) -> Member | None:
    member = ops.find_member(msg.store, msg.sender)
    return member if ops.is_member(member) else None


def _argument(msg: _Message) -> str:
    return msg.command.argument if msg.command is not None else ""


def _already_active_values(msg: _Message, member: Member) -> dict[str, Any]:
    return {"name": member.name, "next_round_on": msg.settings.next_round_on(msg.now)}


def _confirmation(msg: _Message, member: Member, purpose: str, kind: str) -> Notice:
    """A confirmation request: a fresh token, carried by an email whose Message-ID we choose (so a
    plain reply finds the token through In-Reply-To) and whose Reply-To is our plus-address with the
    token (so a reply finds it even when the client drops the threading headers)."""
    message_id = new_message_id(msg.settings.domain)
    token = tokens.issue_token(
        msg.store,
        purpose=purpose,
        member=member,
        now=msg.now,
        days=msg.settings.token_days,
        message_id=message_id,
    )
    assert token.expires_at is not None
    values = {
        "name": member.name,
        "token": token.token,
        "expires_on": msg.settings.today(token.expires_at),
    }
    notice = _notice(msg, kind, member.address, values)
    notice.message_id = message_id
    notice.reply_to = [tokens.plus_address(msg.settings.address, token.token)]
    return notice


def _help(msg: _Message, reason: str, member: Member | None = None) -> Notice:
    """Help to the sender; ``reason`` says what was not understood ("" for plain help)."""
    if member is not None:
        return _reply(msg, "help", member, {"reason": reason})
    return _notice_to_sender(msg, "help", {"reason": reason})


def _not_member(msg: _Message, command: str, to: str | None = None) -> Notice:
    return _notice(msg, "not_member", to or msg.sender, {"command": _COMMAND_WORDS.get(command, command)})


def _notice_to_sender(msg: _Message, kind: str, values: dict[str, Any]) -> Notice:
    member = ops.find_member(msg.store, msg.sender)
    if member is not None:
        return _reply(msg, kind, member, values)
    return _notice(msg, kind, msg.sender, values)


def _reply(msg: _Message, kind: str, member: Member, values: dict[str, Any]) -> Notice:
    """An answer to the member at their address, with their List-Unsubscribe token if any."""
    notice = _notice(msg, kind, member.address, values)
    token = tokens.valid_member_token(msg.store, member, msg.now) if ops.is_member(member) else None
    if token is not None:
        notice.unsubscribe_token = token.token
    return notice


def _notice(msg: _Message, kind: str, to: str, values: dict[str, Any]) -> Notice:
    # Threading headers are copied from the sender's message: only well-formed ids are, so that a
    # strange Message-ID costs the answer its threading, not the answer itself.
    mid = msg.parsed.message_id if is_usable_message_id(msg.parsed.message_id) else None
    references = [r for r in reversed(msg.parsed.in_reply_to[:MAX_REFERENCES]) if is_usable_message_id(r)]
    if mid and mid not in references:
        references.append(mid)
    return Notice(
        kind=kind,
        to=[to],
        values=values,
        key=f"reply:{msg.key}:{kind}",
        in_reply_to=mid,
        references=references if mid else [],
        auto_reply=True,
    )
