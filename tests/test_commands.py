"""The command declarations: the help email and README list every one of them, every declared word
reads as its command, and a second language extends the words without touching a declaration."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from markupsafe import escape

from inbox.commands.declaration import EmailCommand, Phrasing, Proof, Registry
from inbox.commands.registry import COMMANDS
from inbox.grammar import read_command
from inbox.parse import parse_message
from mailer.compose import compose
from mailer.headers import Framing
from mailer.render import Renderer
from mailkit.policy import message_bytes
from tests.test_apply import Harness, only
from tests.test_render import make_settings

NOW = datetime(2026, 1, 5, tzinfo=UTC)
README = Path(__file__).resolve().parent.parent / "README.md"


def _parsed(body: str, subject: str = "Hello"):
    msg = EmailMessage()
    msg["From"] = "ann@example.org"
    msg["To"] = "coffee@unmentoring.example.org"
    msg["Subject"] = subject
    msg.set_content(body)
    return parse_message(bytes(msg))


def _received_help(box: Harness) -> EmailMessage:
    """The help email as the member's mail program receives it: rendered, composed and parsed."""
    notice = only(box.say("ann@example.org", "help"), "help")
    settings = make_settings()
    rendered = Renderer(settings).render(notice.kind, notice.values, to=notice.to)
    raw = message_bytes(compose(notice, rendered, settings, Framing("help-1@example.org"), now=NOW))
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_the_help_email_lists_every_declared_command(box: Harness) -> None:
    received = _received_help(box)
    text = " ".join(received.get_body(("plain",)).get_content().split())
    html = received.get_body(("html",)).get_content()
    assert COMMANDS.names, "no commands declared"
    for command in COMMANDS:
        usage, meaning = command.phrasing.usage, command.phrasing.meaning
        assert f"{usage} {meaning}" in text, f"help text lacks {command.name!r}"
        assert f">{escape(usage)}</b>" in html and escape(meaning) in html, (
            f"help HTML lacks {command.name!r}"
        )


def test_readme_email_commands_table_names_every_command() -> None:
    section = README.read_text(encoding="utf-8").split("## Email commands", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    for command in COMMANDS:
        word = re.escape(command.phrasing.word)
        assert any(re.search(rf"`{word}[` ]", cell) for cell in first_cells), (
            f"README's Email commands table does not name {command.phrasing.word!r}"
        )


@pytest.mark.parametrize("command", list(COMMANDS), ids=lambda c: c.name)
def test_every_declared_word_reads_as_its_command(command: EmailCommand) -> None:
    word = command.phrasing.word
    assert read_command(_parsed(word)).name == command.name
    assert read_command(_parsed("", subject=f"Re: {word.title()}")).name == command.name


def test_a_second_language_extends_the_words_and_the_help_without_touching_declarations() -> None:
    # "xx" stands for any language: its words come as data beside the declarations.
    pause = Phrasing("halt", "xx: take a break", usage="halt [2 months]", aliases=(r"hold\s+on",))
    bilingual = Registry(COMMANDS.commands, {"xx": {"pause": pause}})
    both = ("xx", "en")
    assert read_command(_parsed("halt 2 months"), bilingual, both).argument == "2 months"
    assert read_command(_parsed("Hold on until March"), bilingual, both).name == "pause"
    assert read_command(_parsed("pause"), bilingual, both).name == "pause"
    assert read_command(_parsed("halt 2 months")) is None  # English only: not a command
    lines = bilingual.help_lines("xx")
    assert {"usage": "halt [2 months]", "meaning": "xx: take a break"} in lines
    assert len(lines) == len(COMMANDS.names)  # untranslated commands keep their English line
    assert bilingual.word("pause", "xx") == "halt" and bilingual.word("status", "xx") == "status"


def test_the_registry_refuses_what_would_make_two_ways_or_a_hole() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Registry((*COMMANDS.commands, COMMANDS.commands[0]))
    with pytest.raises(ValueError, match="undeclared"):
        Registry(COMMANDS.commands, {"xx": {"dance": Phrasing("dance", "dance")}})
    handler = COMMANDS.commands[0].handler
    with pytest.raises(ValueError, match="confirmation purpose"):
        EmailCommand("vote", Phrasing("vote", "vote"), handler, proof=Proof.CONFIRM)


def test_commands_that_need_proof_say_which_confirmation_completes_them() -> None:
    for command in COMMANDS:
        if command.proof in (Proof.OR_CONFIRM, Proof.CONFIRM):
            # A change's confirmation holds the command itself; the others have a purpose of their own.
            assert COMMANDS.confirming(command.confirms) is command or command.confirms == "confirm_change"
        else:
            assert not command.confirms
