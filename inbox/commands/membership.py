"""Commands that start or end a membership, and the replies to the confirmations commands ask for.

Who may do what, given that a From header can be forged:
- join needs a confirmation (double opt-in), so a forged join subscribes nobody;
- leave happens at once only with proof of the mailbox (a token we sent, or a reply to one of our
  emails sent to that address); without it the real address is asked to confirm; forget me is
  always confirmed;
- a token acts on the address it was issued to, whoever sends it back: knowing it proves that
  someone read our mail to that address. The permanent member token (List-Unsubscribe) is
  long-lived, so it acts at once only when it comes back from its own address.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from inbox.commands import arguments
from inbox.commands.declaration import EmailCommand, Phrasing, Proof
from inbox.commands.preferences import resume_member
from inbox.commands.request import (
    Applied,
    Request,
    already_active_values,
    confirmation,
    help_notice,
    not_member,
    notice,
    reply,
)
from matcher import members as ops
from matcher import tokens
from matcher.model import Member, MemberStatus, Token

log = logging.getLogger(__name__)

# A forged "join" flood must not turn us into a mail cannon aimed at someone else's mailbox.
MAX_CONFIRMATIONS_PER_DAY = 3
FORGET_NOT_EXPLICIT = (
    "your data has not been erased: to confirm, reply to our email with the words 'forget me'"
)


def _join(request: Request) -> Applied:
    member = request.known_sender()
    if member is not None and ops.is_member(member):
        if member.status is MemberStatus.ACTIVE:
            values = already_active_values(request, member)
            return Applied([reply(request, "already_active", member, values)], "join: already active")
        # Paused or disabled: "join" can only mean "I want to be in again".
        return resume_member(request, member, f"join while {member.status.value}: resumed")
    fields = dict(request.command.fields) if request.command else {}
    if "name" not in fields and not (member and member.name) and request.parsed.sender_name:
        fields["name"] = request.parsed.sender_name
    resend = member is not None and member.status is MemberStatus.PENDING
    if resend and _confirmations_today(request, member) >= MAX_CONFIRMATIONS_PER_DAY:
        log.info("join: confirmation not re-sent, %d already sent today", MAX_CONFIRMATIONS_PER_DAY)
        ops.start_joining(request.store, request.sender, fields, request.now)
        return Applied(action="join while pending: confirmation limit reached, none sent")
    member = ops.start_joining(request.store, request.sender, fields, request.now)
    answer = confirmation(request, member, tokens.CONFIRM_JOIN, "confirm_join")
    return Applied([answer], "join while pending: confirmation re-sent" if resend else "join: pending")


def _confirmations_today(request: Request, member: Member | None) -> int:
    if member is None:
        return 0
    since = request.now - timedelta(days=1)
    return sum(
        1
        for t in request.store.find(Token, "member_id", member.id)
        if t.purpose == tokens.CONFIRM_JOIN and t.created_at > since
    )


def _confirm(request: Request) -> Applied:
    # Reached only when no confirmation token came with the message (apply_confirmation otherwise).
    return _explain_unusable(request, [])


def _leave(request: Request) -> Applied:
    member = request.known_sender()
    if member is not None and member.status is not MemberStatus.LEFT:
        if request.may_act_at_once(member):
            return _leave_now(request, member, "left at once (token or reply to our mail)")
        return Applied(
            [confirmation(request, member, tokens.CONFIRM_LEAVE, "confirm_leave")],
            "leave without proof: confirmation sent",
        )
    # A member token from another address: ask its owner, at their own address, to confirm.
    for token in request.tokens:
        if token.purpose == tokens.MEMBER and token.is_valid(request.now):
            owner = request.store.get(Member, token.member_id)
            if owner is not None and ops.is_member(owner) and owner.address == token.address:
                return Applied(
                    [confirmation(request, owner, tokens.CONFIRM_LEAVE, "confirm_leave")],
                    "leave with a member token from another address: owner asked to confirm",
                )
    return Applied([not_member(request, "leave")], "leave from a non-member")


# -- a reply to a confirmation


def apply_confirmation(request: Request) -> Applied:
    """The message confirms a join, leave or erasure with a token we sent (see inbox/apply.py)."""
    confirming = [t for t in request.tokens if t.purpose in tokens.CONFIRM_PURPOSES]
    asked = request.commands.get(request.command.name) if request.command is not None else None
    if asked is not None and asked.confirms:
        confirming = [t for t in confirming if t.purpose == asked.confirms] or confirming
    for token in confirming:
        if not token.is_valid(request.now):
            continue
        member = request.store.get(Member, token.member_id)
        if member is None or member.erased or member.address != token.address:
            continue
        if token.purpose == tokens.CONFIRM_JOIN:
            return _confirm_join(request, token, member)
        if token.purpose == tokens.CONFIRM_LEAVE:
            return _leave_now(request, member, "leave confirmed: left")
        if not _says_forget(request):
            return Applied([help_notice(request, FORGET_NOT_EXPLICIT, member)], "forget me not confirmed")
        return _forget_now(request, member)
    return _explain_unusable(request, confirming)


def _says_forget(request: Request) -> bool:
    """Erasure cannot be undone, so a bare reply ("no, keep it!") must not trigger it: the text of
    the reply itself has to say "confirm" or "forget me" (a subject line is not enough)."""
    command = request.command
    return command is not None and not command.from_subject and command.name in (CONFIRM.name, "forget_me")


def _explain_unusable(request: Request, confirming: list[Token]) -> Applied:
    """A confirmation that cannot be used: say why (expired, used) so they know what to do."""
    if not confirming:
        return Applied(
            [help_notice(request, "no valid confirmation code was found in your message")],
            "confirm without a code: help sent",
        )
    token = confirming[0]
    if token.used_at is not None:
        member = request.store.get(Member, token.member_id)
        if (
            token.purpose == tokens.CONFIRM_JOIN
            and member is not None
            and member.status is MemberStatus.ACTIVE
        ):
            return Applied(
                [reply(request, "already_active", member, already_active_values(request, member))],
                "confirmation used again: already active",
            )
        reused = help_notice(request, "that confirmation code has already been used")
        return Applied([reused], "confirmation reused")
    if not token.is_valid(request.now):
        asked = request.commands.confirming(token.purpose)
        again = request.commands.word(asked.name) if asked is not None else "help"
        reason = f"that confirmation code has expired; send '{again}' again for a new one"
        return Applied([help_notice(request, reason)], "confirmation expired: help sent")
    return Applied(
        [help_notice(request, "that confirmation code is no longer valid")],
        "confirmation for a changed member",
    )


def _confirm_join(request: Request, token: Token, member: Member) -> Applied:
    tokens.mark_used(request.store, token, request.now)
    if ops.is_member(member):
        return Applied(
            [reply(request, "already_active", member, already_active_values(request, member))],
            "join confirmed again: already active",
        )
    member = ops.activate(request.store, member, request.now)
    tokens.member_token(request.store, member, request.now)
    values = {
        "name": member.name,
        "next_round_on": request.settings.next_round_on(request.now),
        "frequency": member.frequency,
    }
    return Applied([reply(request, "welcome", member, values)], "join confirmed: active")


def _leave_now(request: Request, member: Member, action: str) -> Applied:
    if member.status is MemberStatus.LEFT:
        return Applied([not_member(request, "leave", to=member.address)], "leave: had already left")
    # The goodbye carries no unsubscribe token: leaving retires it.
    goodbye = reply(request, "goodbye", member, {"name": member.name})
    ops.mark_left(request.store, member, request.now)
    return Applied([goodbye], action)


def _forget_now(request: Request, member: Member) -> Applied:
    address = member.address
    ops.erase(request.store, member, request.now)
    return Applied([notice(request, "forgotten", address, {})], "forget me confirmed: personal data erased")


JOIN = EmailCommand(
    "join",
    Phrasing(
        "join",
        "join the programme (we ask you to confirm)",
        aliases=(r"sign\s+me\s+up", r"sign[\s-]*up", "subscribe"),
    ),
    _join,
    fields=True,
    proof=Proof.CONFIRM,
    confirms=tokens.CONFIRM_JOIN,
)
CONFIRM = EmailCommand(
    "confirm",
    Phrasing("confirm", "say yes to a confirmation we sent (replying to it does too)", usage="confirm CODE"),
    _confirm,
    argument=arguments.confirmation_code,
)
LEAVE = EmailCommand(
    "leave",
    Phrasing(
        "leave",
        "stop taking part",
        aliases=("unsubscribe", r"opt[\s-]*(?:me[\s-]+)?out", r"stop(?!\s+(?:pairing|matching|grouping))"),
    ),
    _leave,
    proof=Proof.OR_CONFIRM,
    confirms=tokens.CONFIRM_LEAVE,
)
COMMANDS = (JOIN, CONFIRM, LEAVE)
