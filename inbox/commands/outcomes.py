"""Whether a group's conversation happened: "met", or "missed" with a reason; and the answers
people write in their own words to "Did you meet ...?" (inbox/answers.py), read in that thread only."""

from __future__ import annotations

import logging

from inbox import answers
from inbox.commands import arguments
from inbox.commands.declaration import EmailCommand, Phrasing
from inbox.commands.request import Applied, Request, help_notice, not_member, to_sender
from inbox.commands.unread import ANSWER_SUGGESTION, not_understood
from inbox.questions import Question
from matcher.model import Group, Member, MemberStatus, Result
from matcher.rounds import RoundClosed, RoundError, latest_open_group, record_outcome

log = logging.getLogger(__name__)

# Why an answer could not be recorded, completing "Sorry, we could not act on your email: ...".
DOUBT_REASONS = {
    answers.Doubt.NOT_YET: 'it sounds as if you have not met yet: reply "met" once you have, or "missed" if '
    "it will not happen",
    answers.Doubt.CONTRADICTS: "it seems to say both that you met and that you did not",
    answers.Doubt.HEDGED: "we could not tell whether you met",
    answers.Doubt.NO_ANSWER: "we could not find in it whether you met",
}
EMPTY_REASON = "we found no words in it"


def _outcome(request: Request) -> Applied:
    assert request.command is not None
    name = request.command.name
    member = request.known_sender()
    if member is None or member.status is MemberStatus.PENDING:
        return Applied([not_member(request, name)], f"{name} from a non-member")
    group = request.reply_group(member) or latest_open_group(request.store, member.id)
    if group is None:
        return Applied([to_sender(request, "no_group", {"command": name})], f"{name}: no group")
    result = Result.MET if name == MET.name else Result.MISSED
    return _record(request, member, group, result, request.argument if result is Result.MISSED else "")


def answer(request: Request, member: Member, question: Question) -> Applied:
    """A reply in the thread of "Did you meet ...?" (``question.asks_did_you_meet``) with no
    command, or with "met" or "missed" (read the same way, so that the words after them are kept
    too): the answer in the member's own words is recorded for that group, the rest kept as the
    reason or comment. When the words are unclear, an explicit "met"/"missed" still counts; else
    the member is told what we could not read, and the organisers see it."""
    read = answers.read_answer(request.parsed.text)
    if read is not None and read.outcome is not answers.Outcome.UNCLEAR:
        result = Result.MET if read.outcome is answers.Outcome.MET else Result.MISSED
        return _record(request, member, question.group, result, read.comment)
    if request.command is not None and request.command.name in NAMES:
        return _outcome(request)
    reason = DOUBT_REASONS[read.doubt] if read is not None else EMPTY_REASON
    return not_understood(request, reason, suggestion=ANSWER_SUGGESTION, member=member, group=question.group)


def _record(request: Request, member: Member, group: Group, result: Result, reason: str) -> Applied:
    name = result.value
    try:
        record_outcome(request.store, group.key, member.id, result, reason, request.now)
    except RoundClosed:
        reason_text = f"round {group.round_id} has closed, so answers for it can no longer be recorded"
        return Applied([help_notice(request, reason_text, member)], f"{name} for a closed round")
    except RoundError as exc:
        log.info("%s not recorded, told how to report one: %s", name, exc)
        return Applied([to_sender(request, "no_group", {"command": name})], f"{name}: no group")
    return Applied(action=f"{name} recorded for group {group.key}")


MET = EmailCommand(
    "met",
    Phrasing("met", "tell us your last conversation happened"),
    _outcome,
    after_clause=False,
)
MISSED = EmailCommand(
    "missed",
    Phrasing(
        "missed",
        "tell us it did not happen (and why, if you like)",
        usage="missed [why]",
        aliases=(r"did\s+not\s+meet", r"didn'?t\s+meet"),
    ),
    _outcome,
    argument=arguments.reason,
    after_clause=False,
)
COMMANDS = (MET, MISSED)
NAMES = frozenset(command.name for command in COMMANDS)
