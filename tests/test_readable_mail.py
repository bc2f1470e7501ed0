"""Mail that reads well: every template kind, rendered as the mailer renders it, with the samples of
mailer/template_check.py and with longer names and emptier values than the samples, read back as a
reader sees it.

The wrapping rule checked here, on the plain-text part: a *prose line* is a line of running text, i.e.
not blank, not indented (lists, quotes, JSON and the help table are indented), not starting with ">" or
"- " / "* ", holding no run of two spaces (table rows, aligned figures) and not the signature separator
"-- ". A prose line holding a single word that follows another prose line is a fault when the word is
short enough to share a line (at most half the width): it was either left there by a manual line
break ("(in" / "the" / "subject") or it is the lone last word of a paragraph. No prose line is longer
than the width unless it is a single word (a long address or link cannot be broken).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailer.render import KINDS, WRAP_WIDTH, Renderer
from mailer.settings import MailSettings
from mailer.summary import build_summary
from mailer.template_check import SAMPLE_VALUES
from mailkit.servers import SmtpServer
from matcher.calendar import next_round
from matcher.clock import FakeClock
from tests.servers import free_port
from tests.test_summary_figures import join, run_round
from unmentoring.app import App
from unmentoring.config import Config, Programme, Sandbox
from unmentoring.demo import Person, Simulation

LONG_NAME = "The Northshire and Southtown Randomised Coffee Trials for Public Servants"

# Values that differ from the samples where a template branches or a value may be empty or None.
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("paused", {"until": None}),
    ("status", {"pause_until": None, "status": "active", "about": "", "org": ""}),
    ("help", {"reason": "", "quoted": "frequncy 2", "suggestion": "frequency 2"}),
    ("help", {"reason": ""}),
    ("intro", {"members": [{**m, "about": "", "org": ""} for m in SAMPLE_VALUES["intro"]["members"]]}),
    ("meet_again", {"wanted": False}),
    ("never_pair", {"removed": True}),
    ("unread", {"group": "", "name": ""}),
    ("confirm_join", {"name": "Alice Able"}),
    (
        "summary",
        {
            "round_id": None,
            "rounds": [],
            "reasons": [],
            "ghosts": [],
            "disabled": [],
            "images": [],
            "disputed": [],
            "wrote": [],
            "themes": [],
            "attention": [],
        },
    ),
]


def settings(name: str) -> MailSettings:
    return MailSettings(
        programme_name=name,
        programme_address="coffee-trials-programme@example.org",
        organisers=["boss@example.org"],
        list_id="coffee-trials.example.org",
        smtp=SmtpServer(per_minute=0, per_day=0, host="127.0.0.1", port=2525, security="none"),
    )


def cases() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name in ("Coffee Trials", LONG_NAME):
        for kind in sorted(KINDS):
            found.append((name, kind, dict(SAMPLE_VALUES[kind])))
        for kind, change in VARIANTS:
            found.append((name, kind, {**SAMPLE_VALUES[kind], **change}))
    return found


CASES = cases()


def is_prose(line: str) -> bool:
    return (
        bool(line.strip())
        and not line[:1].isspace()
        and not line.startswith((">", "- ", "* "))
        and "  " not in line
        and line != "-- "
    )


def wrapping_faults(text: str) -> list[str]:
    faults = []
    lines = text.splitlines()
    for before, line in zip([""] + lines, lines, strict=False):
        if not is_prose(line):
            continue
        words = line.split()
        if len(words) == 1 and is_prose(before) and len(line) <= WRAP_WIDTH // 2:
            faults.append(f"lone word {line!r} after {before!r}")
        if len(line) > WRAP_WIDTH and len(words) > 1:
            faults.append(f"too long ({len(line)}): {line!r}")
    return faults


# What Python shows of a value, never what a reader should see.
PYTHON_SHAPES = re.compile(
    r"\bNone\b|\bTrue\b|\bFalse\b|\[\]|\{\}|\[['\"(]|\{['\"]|\(['\"]|datetime\.|\bdate\(|"
    r"\b[A-Z][A-Za-z]+\.[A-Z][A-Z_]+\b|<[A-Z][A-Za-z]+\.[A-Z_]+: |\bobject at 0x"
)


def python_shapes(text: str) -> list[str]:
    return [m.group(0) for m in PYTHON_SHAPES.finditer(text)]


@pytest.mark.parametrize(("name", "kind", "values"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_text_lines_are_filled_by_paragraph(name: str, kind: str, values: dict[str, Any]) -> None:
    text = Renderer(settings(name)).render(kind, values, to=["alice@example.org"]).text
    assert wrapping_faults(text) == [], text


@pytest.mark.parametrize(("name", "kind", "values"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_no_python_representation_is_shown(name: str, kind: str, values: dict[str, Any]) -> None:
    rendered = Renderer(settings(name)).render(kind, values, to=["alice@example.org"])
    assert python_shapes(rendered.subject + "\n" + rendered.text) == [], rendered.text
    assert python_shapes(rendered.html) == [], rendered.html


def test_the_help_mail_keeps_its_sentence_together_with_a_long_programme_name() -> None:
    text = Renderer(settings(LONG_NAME)).render("help", SAMPLE_VALUES["help"]).text
    prose = " ".join(line for line in text.splitlines() if is_prose(line))
    assert "Send one of these words (in the subject or the first line of your email)" in prose
    assert wrapping_faults(text) == []


def test_the_rule_catches_a_manual_line_break() -> None:
    broken = "Send one of these words (in\nthe\nsubject or the first line of your email) to us:\n"
    assert wrapping_faults(broken) == ["lone word 'the' after 'Send one of these words (in'"]


@pytest.fixture
def app(tmp_path: Path):
    clock = FakeClock(datetime(2026, 1, 1, 8, tzinfo=UTC))
    config = Config(programme=Programme(data_dir=str(tmp_path / "data")), base_dir=tmp_path)
    with App.open(config, clock) as opened:
        yield opened


def test_a_real_summary_shows_no_python_representation(app: App) -> None:
    """The summary as the cycle builds it from the store (statuses are enums, times datetimes)."""
    with app.store.transaction():
        for n in range(9):
            join(app, n, datetime(2026, 1, 20, tzinfo=UTC))
    closed = run_round(app, 2026, 2, answers=1)
    notice = build_summary(app.store, closed.id, app.mail)
    rendered = Renderer(app.mail).render("summary", notice.values, to=notice.to)
    assert python_shapes(rendered.text) == [], rendered.text
    assert python_shapes(rendered.html) == []
    assert wrapping_faults(rendered.text) == [], rendered.text


def test_each_copy_of_an_introduction_names_everyone_in_to(tmp_path: Path) -> None:
    """On the sandbox: two people join (one name with a comma, quotes and an accent, which the
    safe writer must keep as one name), a round starts, and each copy of the introduction, parsed as
    a client parses it, shows every member as "Name <address>" in To."""
    config = Config(
        programme=Programme(data_dir=".", organisers=["organiser@localhost"]),
        sandbox=Sandbox(port=free_port()),
        base_dir=tmp_path,
    )
    clock = FakeClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    sim = Simulation(config, clock)
    try:
        names = {"ann@example.org": "Ann Archer", "zoe@example.org": 'Zoë "Z" O\'Neil, PhD'}
        # The client's From carries a plain name; the programme knows each person by their name: line.
        people = [Person("Ann", "ann@example.org", "Highways"), Person("Zoe", "zoe@example.org", "Libraries")]
        for person in people:
            sim.send(person, f"join\nname: {names[person.address]}\norg: {person.org}")
        sim.tick()
        for person in people:
            assert sim.reply_to_latest(person, "confirm_join", "yes")
        sim.tick()
        sim.at(next_round(sim.app.calendar, clock.now()).starts_at)

        expected = {(name, address) for address, name in names.items()}
        for person in people:
            (intro,) = [m for m in sim.mailbox(person.address) if m.get("X-UnMentoring-Kind") == "intro"]
            shown = {(a.display_name, a.addr_spec) for a in intro["To"].addresses}
            assert shown == expected, intro["To"]
            assert intro.get_all("To") and len(intro["To"].addresses) == len(people)
    finally:
        sim.close()
