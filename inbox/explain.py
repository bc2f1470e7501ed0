"""`explain`: what the inbox would make of a raw message, as plain data (for the CLI and tests).

Without a store it says what the message is from its bytes alone; with the programme's store it
also says how it would be read in context: which round and group it answers, and the answer read
from it. Nothing is changed either way.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from inbox import answers
from inbox.apply import answer_to_question
from inbox.classify import Kind, classify
from inbox.commands.declaration import Command
from inbox.commands.outcomes import NAMES as OUTCOME_COMMANDS
from inbox.grammar import read_command
from inbox.parse import ParsedMessage, parse_message
from inbox.questions import question_answered
from matcher import members as ops
from matcher.rounds import latest_open_group
from matcher.store import Store


def explain(raw: bytes, *, own_addresses: Collection[str], store: Store | None = None) -> dict:
    """Classify a raw message and say why; never raises on any input. With ``store``, the result
    also has "context" (see ``in_context``)."""
    parsed = parse_message(raw)
    classification = classify(raw, parsed, own_addresses=own_addresses)
    command = read_command(parsed) if classification.kind is Kind.COMMAND else None
    result: dict[str, Any] = {
        "kind": str(classification.kind),
        "command": command.name if command else None,
        "argument": command.argument if command else None,
        "sender": parsed.sender,
        "bounced_addresses": list(classification.bounced_addresses),
        "reason": classification.reason,
    }
    if store is not None:
        human = classification.kind in (Kind.COMMAND, Kind.NOT_COMMAND)
        result["context"] = in_context(store, parsed, command) if human else None
    return result


def in_context(store: Store, parsed: ParsedMessage, command: Command | None) -> dict[str, Any]:
    """How a person's message would be read against the programme's state: "read_as" is "answer"
    (to "Did you meet ...?", with "answer", "comment" and "doubt"), "command", or "not understood";
    "round" and "group" name the group it is about (None when none) and "asked" the email of ours
    it replies to ("intro", "followup", "reminder" or None)."""
    member = ops.find_member(store, parsed.sender)
    context: dict[str, Any] = {
        "member": ops.is_member(member),
        "round": None,
        "group": None,
        "asked": None,
        "read_as": "command" if command is not None else "not understood",
        "answer": None,
        "comment": None,
        "doubt": None,
    }
    question = question_answered(store, parsed.in_reply_to, member) if member is not None else None
    group = question.group if question is not None else None
    if question is not None:
        context["asked"] = str(question.asked)
    if answer_to_question(store, parsed, command) is not None:
        read = answers.read_answer(parsed.text)
        clear = read is not None and read.outcome is not answers.Outcome.UNCLEAR
        if clear or command is None:
            context["read_as"] = "answer" if clear else "not understood"
            context["answer"] = str(read.outcome) if read is not None else None
            context["comment"] = read.comment if read is not None else None
            context["doubt"] = str(read.doubt) if read is not None else None
    elif group is None and command is not None and command.name in OUTCOME_COMMANDS and member is not None:
        group = latest_open_group(store, member.id)
    if group is not None:
        context["round"], context["group"] = group.round_id, group.number
    return context
