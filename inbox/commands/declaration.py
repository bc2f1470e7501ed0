"""What an email command is: one declaration holding its words, its grammar, its handler, its help
line and the proof of mailbox it needs; and the registry that collects them in order.

The words of a declaration are English, the programme's source language. Another language adds a
``Phrasing`` per command under its language code (see ``Registry.translations``) without touching
the declarations; the grammar then reads that language too and the help email can be shown in it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from inbox.commands import arguments

if TYPE_CHECKING:
    from inbox.commands.request import Applied, Request

SOURCE_LANGUAGE = "en"


class Proof(StrEnum):
    """What a command needs before it acts, given that a From header can be forged."""

    NONE = "none"  # low-stakes: acts on the sender's own record and answers at that address
    OR_CONFIRM = "or_confirm"  # at once with proof of mailbox, else the address is asked to confirm
    # Only with proof of mailbox; else the answer, at the member's own address, asks them to send it
    # as a reply to one of our emails (for wishes that name someone else: "never pair me with").
    MAILBOX = "mailbox"
    CONFIRM = "confirm"  # always asks the address to confirm first (double opt-in, erasure)


@dataclass(frozen=True)
class Command:
    """What one message asks for: a declared command's name, its argument and any profile fields."""

    name: str
    argument: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # True when the command came from the subject line only. The processor may prefer what the
    # reply context says (a reply to a confirmation confirms) over a subject such as "Re: Join".
    from_subject: bool = False
    # Commands a line named at once, so that the answer can ask which one was meant.
    suggested: tuple[str, ...] = ()


@dataclass(frozen=True)
class Phrasing:
    """How one language says a command: the word shown to people, the other ways of writing it
    (regular expressions, matched at the start of a line), and its line in the help email."""

    word: str  # "my data"; also matched itself, with any spaces written as spaces or hyphens
    meaning: str  # what it does, one short line
    usage: str = ""  # how to write it when more than the word: "confirm CODE"
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.usage:
            object.__setattr__(self, "usage", self.word)


ArgumentReader = Callable[[str, list[str]], str]
Handler = Callable[["Request"], "Applied"]


@dataclass(frozen=True)
class EmailCommand:
    name: str  # stable identifier, e.g. "my_data": logs, explain output, notices
    phrasing: Phrasing  # in the source language
    handler: Handler
    argument: ArgumentReader = arguments.plain
    # Whole lines that ask for this command without its word ("every 2 months"): line -> argument.
    bare: Callable[[str], str | None] | None = None
    fields: bool = False  # reads "name: ...", "org: ...", "about: ..." lines anywhere in the text
    proof: Proof = Proof.NONE
    confirms: str = ""  # the token purpose of the confirmation it asks for (matcher/tokens.py)
    # Also read after a short lead-in clause ("Sorry - pause until March"); answers to a question
    # (met, missed) are not, since "no, met with my boss instead" is no answer.
    after_clause: bool = True

    def __post_init__(self) -> None:
        if (self.proof in (Proof.OR_CONFIRM, Proof.CONFIRM)) != bool(self.confirms):
            raise ValueError(f"command {self.name!r}: a confirmation purpose goes with proof, and only then")


@dataclass(frozen=True)
class Registry:
    """The declared commands, in the order the grammar tries them and the help email lists them."""

    commands: tuple[EmailCommand, ...]
    # language code -> command name -> Phrasing; the source language comes from the declarations.
    translations: Mapping[str, Mapping[str, Phrasing]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        names = [command.name for command in self.commands]
        if len(set(names)) != len(names):
            raise ValueError(f"a command is declared twice: {names}")
        for language, phrasings in self.translations.items():
            unknown = set(phrasings) - set(names)
            if unknown:
                raise ValueError(f"translation {language!r} names undeclared commands: {sorted(unknown)}")

    def __iter__(self) -> Iterator[EmailCommand]:
        return iter(self.commands)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(command.name for command in self.commands)

    @property
    def languages(self) -> tuple[str, ...]:
        return (SOURCE_LANGUAGE, *(code for code in self.translations if code != SOURCE_LANGUAGE))

    def get(self, name: str) -> EmailCommand | None:
        return next((command for command in self.commands if command.name == name), None)

    def phrasing(self, name: str, language: str = SOURCE_LANGUAGE) -> Phrasing | None:
        if language == SOURCE_LANGUAGE:
            command = self.get(name)
            return command.phrasing if command is not None else None
        return self.translations.get(language, {}).get(name)

    def word(self, name: str, language: str = SOURCE_LANGUAGE) -> str:
        """The word people write for a command ("my data" for my_data)."""
        phrasing = self.phrasing(name, language) or self.phrasing(name)
        return phrasing.word if phrasing is not None else name

    def confirming(self, purpose: str) -> EmailCommand | None:
        """The command whose confirmation carries tokens of this purpose ("leave" for leave)."""
        return next((command for command in self.commands if command.confirms == purpose), None)

    def patterns(self, languages: Sequence[str]) -> Iterator[tuple[EmailCommand, re.Pattern[str]]]:
        """(command, line pattern) in trying order, for each of these languages in turn."""
        # Compiled at first use, not at import: a command that reads no mail never pays for them.
        for language in languages:
            for command in self.commands if language in self.languages else ():
                phrasing = self.phrasing(command.name, language)
                if phrasing is not None:
                    yield command, _line_pattern(phrasing)

    def help_lines(self, language: str = SOURCE_LANGUAGE) -> list[dict[str, str]]:
        """The help email's ``commands`` value: every command's usage and meaning, in the language
        asked for where translated."""
        lines = []
        for command in self.commands:
            phrasing = self.phrasing(command.name, language) or command.phrasing
            lines.append({"usage": phrasing.usage, "meaning": phrasing.meaning})
        return lines


@functools.cache
def _line_pattern(phrasing: Phrasing) -> re.Pattern[str]:
    word = r"[\s-]*".join(re.escape(part) for part in phrasing.word.split())
    alternatives = "|".join((*phrasing.aliases, word))
    # A word counts only as a whole word ("metropolitan" is not "met"); the rest is the argument.
    return re.compile(rf"{arguments.LEAD}(?:{alternatives})(?![\w'])(?P<rest>.*)$", re.IGNORECASE)
