"""Applying one inbound message to the store: what a person asked for, or what a bounce tells us.

A person's message goes to the handler its command declares (inbox/commands/), unless it carries a
confirmation token and asks for nothing else, which makes it the reply to that confirmation. The
result is plain data (``Applied``): the notices to send and what was done, for the log. Nothing here
sends, opens a transaction (the processor runs a whole message in one) or raises on bad input.
"""

from __future__ import annotations

import logging
from datetime import datetime

from inbox.classify import Classification
from inbox.commands.declaration import Command
from inbox.commands.membership import apply_confirmation
from inbox.commands.registry import COMMANDS
from inbox.commands.request import MAX_REFERENCES, Applied, Request, help_notice
from inbox.parse import ParsedMessage
from inbox.senders import reason_not_to_answer
from inbox.settings import InboxSettings
from mailkit.addresses import canonical_address
from matcher import members as ops
from matcher import tokens
from matcher.model import Group, Member, Notice, OutboxEntry, Token
from matcher.store import Store

log = logging.getLogger(__name__)


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
    """The programme's bounce policy applied to these addresses (see matcher/members.py)."""
    return ops.score_permanent_bounces(
        store,
        addresses,
        threshold=settings.limits.bounce_threshold,
        organisers=settings.organisers,
        today=settings.today(now),
    )


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
    refusal = reason_not_to_answer(parsed, settings.own_addresses)
    if refusal:
        return Applied(action=f"ignored: {refusal}", changed=False)
    found = _tokens_of(store, settings, parsed, command)
    request = Request(
        store,
        settings,
        now,
        parsed,
        key,
        command,
        found,
        COMMANDS,
        _group_named_by_reply,
    )
    if _is_confirmation(command, found):
        return apply_confirmation(request)
    if command is None:
        return Applied([help_notice(request, "")], "unrecognised: help sent")
    declared = COMMANDS.get(command.name)
    if declared is None:
        return Applied([help_notice(request, "")], f"unknown command {command.name}: help sent")
    return declared.handler(request)


def _tokens_of(
    store: Store, settings: InboxSettings, parsed: ParsedMessage, command: Command | None
) -> list[Token]:
    """Every stored token the message carries, by every path, most explicit first: the command's
    argument, a plus-address it was sent to, the email it replies to, then anywhere in its text."""
    candidates: list[str] = []
    if command is not None:
        candidates += tokens.tokens_in_text(command.argument)
    for address in parsed.to:
        value = tokens.token_from_plus_address(address, settings.address)
        if value:
            candidates.append(value)
    found = tokens.lookup_tokens(store, candidates)
    for mid in parsed.in_reply_to[:MAX_REFERENCES]:
        for token in store.find(Token, "message_id", mid):
            if all(token.token != t.token for t in found):
                found.append(token)
    text = f"{parsed.subject}\n{parsed.full_text}"
    for token in tokens.lookup_tokens(store, tokens.tokens_in_text(text)):
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
    declared = COMMANDS.get(command.name)
    return declared is not None and declared.confirms in purposes


def _group_named_by_reply(msg: Request, member: Member) -> Group | None:
    """The group whose intro, follow-up or reminder this message answers, if the member is in it."""
    for mid in msg.parsed.in_reply_to[:MAX_REFERENCES]:
        entry = msg.store.find_one(OutboxEntry, "message_id", mid)
        group = msg.store.get(Group, entry.group_id) if entry is not None and entry.group_id else None
        if group is not None and member.id in group.members:
            return group
    return None
