"""Whether a group's conversation happened: "met", or "missed" with a reason."""

from __future__ import annotations

import logging

from inbox.commands import arguments
from inbox.commands.declaration import EmailCommand, Phrasing
from inbox.commands.request import Applied, Request, help_notice, not_member, to_sender
from matcher.model import MemberStatus, Result
from matcher.rounds import RoundClosed, RoundError, latest_open_group, record_outcome

log = logging.getLogger(__name__)


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
    reason = request.argument if result is Result.MISSED else ""
    try:
        record_outcome(request.store, group.key, member.id, result, reason, request.now)
    except RoundClosed:
        reason_text = f"round {group.round_id} has closed, so answers for it can no longer be recorded"
        return Applied([help_notice(request, reason_text, member)], f"{name} for a closed round")
    except RoundError as exc:
        log.warning("%s could not be recorded: %s", name, exc)
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
