"""Reading which command a person's message asks for, and its argument.

See DESIGN.md "Email grammar". Commands lead one of the first non-empty lines of the reply text (or
the subject); case and punctuation do not matter, and "I met the team yesterday" is not a command.
The words, aliases and argument grammar of each command come from its declaration
(inbox/commands/); this module knows only where in a message to look.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import MappingProxyType

from inbox.commands.arguments import normal_line, profile_fields
from inbox.commands.declaration import SOURCE_LANGUAGE, Command, Registry
from inbox.commands.registry import COMMANDS
from inbox.parse import ParsedMessage

COMMAND_NAMES = COMMANDS.names
BODY_LINES_READ = 5
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|rv|antw|doorst|réf|ref|enc|odp|ynt|r)\s*(?:\[\d+\])?\s*:"
    r"\s*|\[[^\]]{0,40}\]\s*|\([^)]{0,40}\)\s*)+",
    re.IGNORECASE,
)
_REST_LEAD = re.compile(r"^[\s:;,.\-–—=!]+")
# A lead-in clause ends at a comma, colon, semicolon, full stop, "!" or "?", or a spaced dash.
_CLAUSE_BREAK = re.compile(r"(?:[,;:.!?]+|\s[-–—]+)\s+")
_OR = re.compile(r"(?i)[\s,]*\s+or\s+(?:maybe\s+|perhaps\s+|else\s+)?")
LEAD_IN_WORDS = 6
AMBIGUOUS = "help"  # what a line naming two commands asks for: help that names them


def read_command(
    parsed: ParsedMessage,
    commands: Registry = COMMANDS,
    languages: Sequence[str] = (SOURCE_LANGUAGE,),
) -> Command | None:
    """The command a message asks for, from its first non-empty lines or else its subject."""
    lines = [line for line in (normal_line(raw) for raw in parsed.text.split("\n")) if line]
    for index, line in enumerate(lines[:BODY_LINES_READ]):
        command = _command_in_line(line, lines[index + 1 :], commands, languages)
        if command is not None:
            return _with_fields(command, lines, commands)
    subject = normal_line(_SUBJECT_PREFIX.sub("", normal_line(parsed.subject)))
    if subject:
        command = _command_in_line(subject, [], commands, languages)
        if command is not None:
            return _with_fields(Command(command.name, command.argument, from_subject=True), lines, commands)
    return None


def _command_in_line(
    line: str, following: list[str], commands: Registry, languages: Sequence[str]
) -> Command | None:
    command = _command_leading(line, following, commands, languages)
    if command is not None:
        return command
    # "pause, or maybe leave?": a question back to the sender, answered with help naming both.
    offered = {
        command.name: command
        for part in _OR.split(line)
        if (command := _command_leading(part, [], commands, languages)) is not None
        and _after_clause(command, commands)
    }
    if len(offered) > 1:
        return Command(AMBIGUOUS, suggested=tuple(offered))
    # "I'm stupidly busy - pause until March": a command after a short lead-in clause.
    parts = _CLAUSE_BREAK.split(line)
    for index in range(1, len(parts)):
        if len(" ".join(parts[:index]).split()) > LEAD_IN_WORDS:
            break
        rest = " ".join(parts[index:])
        command = _command_leading(rest, following, commands, languages)
        if command is not None and _after_clause(command, commands) and not _OR.match(" " + rest):
            return command
    return None


def _after_clause(command: Command, commands: Registry) -> bool:
    declared = commands.get(command.name)
    return declared is not None and declared.after_clause


def _command_leading(
    line: str, following: list[str], commands: Registry, languages: Sequence[str]
) -> Command | None:
    for declared in commands:
        argument = declared.bare(line) if declared.bare is not None else None
        if argument is not None:
            return Command(declared.name, argument)
    for declared, pattern in commands.patterns(languages):
        matched = pattern.match(line)
        if matched is None:
            continue
        rest = _REST_LEAD.sub("", matched.group("rest"))
        if re.match(r"(?:or\b|/)", rest, re.IGNORECASE):
            return None  # "met or missed?": a question quoted back, not an answer
        return Command(declared.name, declared.argument(rest, following))
    return None


def _with_fields(command: Command, lines: list[str], commands: Registry) -> Command:
    declared = commands.get(command.name)
    if declared is None or not declared.fields:
        return command
    fields = MappingProxyType(profile_fields(lines))
    return Command(command.name, command.argument, fields, command.from_subject)
