"""Checking the templates before any member sees them: every kind rendered with sample values.

The organiser's overrides are the reason: a typo in ``templates/intro.txt`` must show at
``check-config`` time, by file and line, not as a failed introduction on the night of a round.
``SAMPLE_VALUES`` is also the contract the tests build notices against (one valid set per kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mailer.render import KINDS, Renderer, RenderError, shipped_loader
from mailer.settings import MailSettings

SAMPLE_MEMBERS = [
    {"name": "Alice Able", "org": "Northshire Council", "about": "Roads and <b>bridges</b>"},
    {"name": "Bob Baker", "org": "Southtown NHS Trust", "about": "Digital services"},
]

SAMPLE_VALUES: Mapping[str, Mapping[str, Any]] = {
    "confirm_join": {"name": "", "token": "tok-join-123", "expires_on": date(2026, 12, 14)},
    "welcome": {"name": "Alice", "next_round_on": date(2027, 1, 4), "frequency": 2},
    "already_active": {"name": "Alice", "next_round_on": date(2027, 1, 4)},
    "confirm_leave": {"name": "Alice", "token": "tok-leave-456", "expires_on": date(2026, 12, 14)},
    "goodbye": {"name": "Alice"},
    "paused": {"name": "Alice", "until": date(2027, 3, 1)},
    "resumed": {"name": "Alice", "next_round_on": date(2027, 1, 4)},
    "frequency_changed": {"name": "Alice", "frequency": 3},
    "profile_updated": {"name": "Alice", "org": "Northshire Council", "about": "Roads"},
    "status": {
        "name": "Alice",
        "status": "paused",
        "org": "Northshire Council",
        "about": "Roads",
        "frequency": 1,
        "pause_until": date(2027, 2, 1),
        "next_round_on": date(2027, 2, 1),
        "rounds": 7,
        "met": 5,
    },
    "help": {
        "reason": "frequency must be 1, 2 or 3",
        "commands": [{"usage": "frequency 1, 2 or 3", "meaning": "be matched every month, two or three"}],
    },
    "not_member": {"command": "pause"},
    "no_group": {"command": "met"},
    "my_data": {
        # The shape of matcher/members.py member_data, as stored (dates as ISO 8601 text).
        "data": {
            "member": {
                "id": "m1",
                "address": "alice@example.org",
                "name": "Alice",
                "org": "Highways",
                "about": "Roads and bridges",
                "status": "paused",
                "frequency": 2,
                "pause_until": "2027-02-01",
                "joined_at": "2026-11-02T09:00:00+00:00",
                "left_at": None,
                "bounce_score": 0,
                "silent_rounds": 0,
                "created_at": "2026-11-02T08:55:00+00:00",
                "erased": False,
                "never_with": ["Bob"],
                "meet_again": ["2026-12:3"],
            },
            "groups": [
                {
                    "round": "2026-12",
                    "group": 3,
                    "meeting_week": "2026-12-07 to 2026-12-13",
                    "partners": ["Carol"],
                    "host": "Carol",
                    "your_answer": {"result": "met", "reason": "", "at": "2026-12-14T10:00:00+00:00"},
                    "group_result": "met",
                }
            ],
            "met": 1,
            "tokens": [
                {
                    "purpose": "confirm_leave",
                    "created_at": "2026-12-20T10:00:00+00:00",
                    "expires_at": "2026-12-27T10:00:00+00:00",
                    "used": False,
                }
            ],
            "messages_we_could_not_read": [
                {"at": "2026-12-15T10:00:00+00:00", "text": "see you soon", "reason": "no command"}
            ],
        },
        "attachments": {"my-data.json": b"{}\n"},
    },
    "confirm_forget": {
        "name": "Alice",
        "token": "tok-forget-789",
        "expires_on": date(2026, 12, 14),
    },
    "forgotten": {},
    "confirm_change": {
        "name": "Alice",
        "change": "pause until 2027-03-01",
        "token": "tok-change-321",
        "expires_on": date(2026, 12, 14),
    },
    "intro": {
        "round_id": "2026-12",
        "members": SAMPLE_MEMBERS,
        "host": "Alice Able",
        "meeting_week_start": date(2026, 12, 7),
        "meeting_week_end": date(2026, 12, 13),
        "followup_on": date(2026, 12, 14),
    },
    "nudge": {
        "names": ["Alice Able", "Bob Baker"],
        "host": "Alice Able",
        "round_id": "2026-12",
        "meeting_week_end": date(2026, 12, 13),
    },
    "followup": {
        "name": "Bob Baker",
        "partners": ["Alice Able"],
        "round_id": "2026-12",
        "meeting_week_start": date(2026, 12, 7),
        "meeting_week_end": date(2026, 12, 13),
    },
    "reminder": {
        "name": "Bob Baker",
        "partners": ["Alice Able", "Cara Cole"],
        "round_id": "2026-12",
    },
    "ghost": {"name": "Dan", "rounds": 3},
    "sit_out": {"name": "Dan", "round_id": "2026-12", "next_round_on": date(2027, 1, 4)},
    "stranded": {"name": "Dan", "round_id": "2026-12", "meeting_week_end": date(2026, 12, 13)},
    "rematch": {
        "name": "Dan",
        "round_id": "2026-12",
        "outcome": "waiting",
        "meeting_week_end": date(2026, 12, 13),
        "middle": date(2026, 12, 10),
    },
    "rematch_none": {"name": "Dan", "round_id": "2026-12", "next_round_on": date(2027, 1, 4)},
    "meet_again": {"name": "Dan", "partners": ["Alice Adams"], "wanted": True},
    "never_pair": {"name": "Dan", "who": "Alice Adams", "removed": False},
    "bounce_disabled": {"address": "dan@example.org", "name": "Dan", "score": 3},
    "unread": {
        "name": "Bob Baker",
        "address": "bob@example.org",
        "at": datetime(2026, 12, 15, 9, 30),
        "subject": "Re: Did you meet Alice Able?",
        "text": "We keep missing each other, can you help?",
        "reason": "we could not tell whether you met",
        "group": "2026-12:4",
    },
    "summary": {
        "figures": [("Members", 42), ("Joined this month", 5), ("Met rate", "71%")],
        "rounds": [
            {"id": "2026-11", "groups": 20, "met": 14, "missed": 4, "no_reply": 2},
            ("2026-12", 21, 14, 3, 3, 1),
        ],
        "reasons": ["too busy", "holiday"],
        "disputed": ["group 4: Alice Able: met; Bob Baker: missed (never heard back)"],
        "wrote": [
            {
                "name": "Cara Cole",
                "address": "cara@example.org",
                "at": datetime(2026, 12, 15, 9, 30),
                "text": "We keep missing each other, can you help?",
            }
        ],
        "themes": [
            {"theme": "too busy", "count": 1, "examples": ["too busy"]},
            {"theme": "leave", "count": 1, "examples": ["holiday"]},
        ],
        "attention": [
            {"who": "Fay <fay@example.org>", "why": "silent 2 rounds in a row", "done": "reminded"}
        ],
        "schedule": "the first Monday of every month, meeting week 1",
        "ghosts": ["Dan"],
        "disabled": [{"name": "Eve", "address": "eve@example.org"}],
        "images": ["growth", "network"],
    },
}


@dataclass(frozen=True)
class TemplateReport:
    errors: list[RenderError]  # one per distinct fault (a broken base shows once, not once per kind)
    overridden: list[str]  # shipped templates the organiser's folder replaces
    unused: list[str]  # files in the organiser's folder that replace nothing (a misspelt name?)
    half: list[str]  # kinds whose .txt or .html alone is replaced: the two parts of the mail disagree


def check_templates(settings: MailSettings) -> TemplateReport:
    renderer = Renderer(settings)
    shipped = sorted(shipped_loader().list_templates())
    errors: dict[tuple[str, int | None, str], RenderError] = {}
    # Compile every file first: a syntax error in a branch the samples never reach still shows.
    for name in shipped:
        try:
            renderer.compile(name)
        except RenderError as exc:
            errors.setdefault((exc.template, exc.line, exc.problem), exc)
    for kind in sorted(KINDS):
        try:
            renderer.render(kind, SAMPLE_VALUES[kind], to=["alice@example.org"])
        except RenderError as exc:
            errors.setdefault((exc.template, exc.line, exc.problem), exc)
    own = _files(settings.templates_dir)
    return TemplateReport(
        errors=list(errors.values()),
        overridden=[name for name in own if name in shipped],
        unused=[name for name in own if name not in shipped],
        half=[kind for kind in sorted(KINDS) if len({f"{kind}.txt", f"{kind}.html"} & set(own)) == 1],
    )


def _files(folder: Path | None) -> list[str]:
    if folder is None:
        return []
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
