"""Applying one inbound message to the store: what a person asked for, or what a bounce tells us.

A person's message goes to the handler its command declares (inbox/commands/), unless it carries a
confirmation token and asks for nothing else, which makes it the reply to that confirmation. The
result is plain data (``Applied``): the notices to send and what was done, for the log. Nothing here
sends, opens a transaction (the processor runs a whole message in one) or raises on bad input.
"""

from __future__ import annotations

import logging
from datetime import datetime

from inbox.bounce_origin import counted_addresses
from inbox.classify import Classification
from inbox.commands import outcomes
from inbox.commands.declaration import Command
from inbox.commands.membership import apply_confirmation
from inbox.commands.registry import COMMANDS
from inbox.commands.request import Applied, Request
from inbox.commands.unread import not_understood
from inbox.parse import ParsedMessage
from inbox.questions import MAX_REFERENCES, Question, question_answered
from inbox.senders import reason_not_to_answer
from inbox.settings import InboxSettings
from mailkit.addresses import canonical_address, plus_tag
from matcher import members as ops
from matcher import tokens
from matcher.model import Member, Notice, Token
from matcher.store import Store

log = logging.getLogger(__name__)

NOT_A_COMMAND = "it does not start with one of our commands"


# -- bounces


def apply_bounce(
    store: Store,
    settings: InboxSettings,
    now: datetime,
    classification: Classification,
    parsed: ParsedMessage,
    raw: bytes,
) -> Applied:
    """A bounce: +1 to each bounced member's score if permanent and the report shows it came back
    from our mail to that address (inbox/bounce_origin.py); disable at the threshold and tell the
    organisers. Temporary failures are only logged. Never answered."""
    reported = [a for a in (canonical_address(x) for x in classification.bounced_addresses) if a]
    if not classification.permanent:
        log.info("temporary delivery failure for %d address(es); nothing counted", len(reported))
        return Applied(action=f"temporary bounce, {len(reported)} address(es)", changed=False)
    addresses = counted_addresses(store, settings, parsed, raw, reported)
    if not addresses:
        log.info("bounce report not traced to our mail (no return path or Message-ID of ours): not counted")
        return Applied(action="permanent bounce not traced to our mail: not counted", changed=False)
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
    """Apply a person's message (classified as human mail). ``key`` is the message key (dedup).

    A reply in the thread of "Did you meet ...?" without a command (or with "met"/"missed") is read
    as the member's answer in their own words (inbox/commands/outcomes.py). Anywhere else, a message
    without a command is not understood: the sender is told what we could not read, and the
    organisers see it (inbox/commands/unread.py)."""
    refusal = reason_not_to_answer(parsed, settings.own_addresses)
    if refusal:
        return Applied(action=f"ignored: {refusal}", changed=False)
    found = _tokens_of(store, settings, parsed, command)
    request = Request(store, settings, now, parsed, key, command, found, COMMANDS)
    if _is_confirmation(command, found):
        return apply_confirmation(request)
    asked = answer_to_question(store, parsed, command)
    if asked is not None:
        return outcomes.answer(request, *asked)
    if command is None:
        return not_understood(request, NOT_A_COMMAND)
    declared = COMMANDS.get(command.name)
    if declared is None:
        return not_understood(request, NOT_A_COMMAND)
    return declared.handler(request)


def answer_to_question(
    store: Store, parsed: ParsedMessage, command: Command | None
) -> tuple[Member, Question] | None:
    """The member and the "Did you meet ...?" question a message answers, when it is to be read as
    that answer: sent by a member of the group, in the thread of the question, with no command or
    with "met"/"missed"."""
    if command is not None and command.name not in outcomes.NAMES:
        return None
    member = ops.find_member(store, parsed.sender)
    if not ops.is_member(member):
        return None
    assert member is not None
    question = question_answered(store, parsed.in_reply_to, member)
    if question is None or not question.asks_did_you_meet:
        return None
    return member, question


def _tokens_of(
    store: Store, settings: InboxSettings, parsed: ParsedMessage, command: Command | None
) -> list[Token]:
    """Every stored token the message carries, by every path, most explicit first: the command's
    argument, a plus-address it was sent to, the email it replies to, then anywhere in its text."""
    candidates: list[str] = []
    if command is not None:
        candidates += tokens.tokens_in_text(command.argument)
    for address in parsed.to:
        tag = plus_tag(address, settings.address)
        if tag and tokens.looks_like_token(tag):
            candidates.append(tag)
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
    confirming = [t for t in found if t.purpose in tokens.CONFIRM_PURPOSES]
    if not confirming:
        return False
    if command is None or command.name == "confirm" or command.from_subject:
        return True
    declared = COMMANDS.get(command.name)
    # "resume" in reply to the confirmation of a held "pause" is a new command, not a yes to it.
    return declared is not None and any(
        t.purpose == declared.confirms and t.command.get("name", command.name) == command.name
        for t in confirming
    )
