"""What the organisers' summary says beyond the round's own counts: who joined and left since the
last summary, why meetings did not happen (reasons grouped by theme), and who needs attention.

Pure functions of store records; mailer/summary.py puts them in the email.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from matcher.model import Group, Member, MemberStatus, Result, Round

EXAMPLES_SHOWN = 3
ATTENTION_SHOWN = 20
# Rounds a member must have been grouped in before "never met anyone" or "partners never reply"
# says something about them rather than about luck.
ATTENTION_AFTER_ROUNDS = 2
SILENT_ATTENTION = 2

# Themes in the order they are tried: the first whose words a reason contains is its theme.
OTHER = "other"
THEMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "partner didn't reply",
        (
            r"(didn'?t|did not|never|no) (reply|replied|respond|responded|answer|answered|hear|heard)",
            r"no (reply|response|answer)",
            r"ghost(ed)?",
            r"unresponsive",
            r"not (replied|responded)",
        ),
    ),
    (
        "illness",
        (r"ill", r"illness", r"sick", r"unwell", r"flu", r"covid", r"poorly", r"hospital", r"doctor"),
    ),
    (
        "leave",
        (
            r"leave",
            r"holiday",
            r"holidays",
            r"vacation",
            r"away",
            r"off work",
            r"out of (the )?office",
            r"travel\w*",
        ),
    ),
    (
        "diary clash",
        (
            r"clash\w*",
            r"diary",
            r"calendar",
            r"conflict\w*",
            r"double[- ]booked",
            r"(couldn'?t|could not|can'?t) find a (time|slot)",
            r"schedul\w*",
            r"resched\w*",
            r"timing",
        ),
    ),
    ("too busy", (r"busy", r"workload", r"swamped", r"deadlines?", r"snowed under", r"no time", r"flat out")),
)
_THEME_PATTERNS = tuple(
    (theme, re.compile(r"\b(" + "|".join(words) + r")\b", re.I)) for theme, words in THEMES
)


def theme_of(reason: str) -> str:
    return next((theme for theme, pattern in _THEME_PATTERNS if pattern.search(reason)), OTHER)


@dataclass(frozen=True)
class MissedReason:
    round_id: str
    group: int
    reason: str

    @property
    def theme(self) -> str:
        return theme_of(self.reason)


@dataclass(frozen=True)
class Theme:
    name: str
    count: int
    examples: tuple[str, ...]  # a few verbatim reasons, distinct


def missed_reasons(groups: Iterable[Group]) -> list[MissedReason]:
    """The reasons given for conversations that did not happen (a disputed group's are its own)."""
    return [
        MissedReason(group.round_id, group.number, outcome.reason)
        for group in groups
        if group.result() is Result.MISSED
        for outcome in group.outcomes.values()
        if outcome.result is Result.MISSED and outcome.reason
    ]


def grouped_by_theme(reasons: Sequence[MissedReason]) -> list[Theme]:
    """Themes by count (most first, "other" last), each with a few distinct reasons as written."""
    by_theme: dict[str, list[str]] = {}
    for reason in reasons:
        by_theme.setdefault(reason.theme, []).append(reason.reason)
    themes = []
    for name, said in by_theme.items():
        examples = tuple(dict.fromkeys(said))[:EXAMPLES_SHOWN]
        themes.append(Theme(name, len(said), examples))
    return sorted(themes, key=lambda t: (t.name == OTHER, -t.count, t.name))


REASON_COLUMNS = ("round", "group", "theme", "reason")


def reason_rows(reasons: Sequence[MissedReason]) -> list[dict[str, object]]:
    """The full list for the CSV attachment (unmentoring/app.py writes it), one reason a row."""
    return [{"round": r.round_id, "group": r.group, "theme": r.theme, "reason": r.reason} for r in reasons]


# -- joined and left since the last summary


def is_member_now(member: Member) -> bool:
    """Counted as a member: active or paused (not pending, left, disabled or erased)."""
    return not member.erased and member.status in (MemberStatus.ACTIVE, MemberStatus.PAUSED)


def since_last_summary(all_rounds: Sequence[Round], this: Round) -> datetime | None:
    """When the period of this summary starts: the previous round's closing (its summary went out
    then), or None for the first summary (everything so far)."""
    earlier = [r.closed_at for r in all_rounds if r.ordinal < this.ordinal and r.closed_at is not None]
    return max(earlier, default=None)


def joined_and_left(
    members: Iterable[Member], since: datetime | None, until: datetime
) -> tuple[list[Member], list[Member]]:
    """Who joined, and who left, in (since, until]."""

    def inside(when: datetime | None) -> bool:
        return when is not None and (since is None or when > since) and when <= until

    members = list(members)
    return [m for m in members if inside(m.joined_at)], [m for m in members if inside(m.left_at)]


# -- needs attention


@dataclass(frozen=True)
class Attention:
    who: str  # display name (and address) of the member
    why: str
    done: str  # what the service did about it


def needs_attention(
    members: Sequence[Member], groups: Sequence[Group], *, ghost_rounds: int
) -> list[Attention]:
    """Members who never met anyone, have been silent, whose partners never reply, or whose address
    bounces: one row each (the most pressing reason), with what the service did about it.

    ``groups``: every group of every closed round, oldest first."""
    by_member: dict[str, list[Group]] = {}
    for group in groups:
        for member_id in group.members:
            by_member.setdefault(member_id, []).append(group)
    rows: list[Attention] = []
    for member in sorted(members, key=lambda m: m.display_name.casefold()):
        if member.erased or member.status in (MemberStatus.LEFT, MemberStatus.PENDING):
            continue
        row = _attention(member, by_member.get(member.id, []), ghost_rounds)
        if row is not None:
            rows.append(row)
    return rows


def _attention(member: Member, groups: list[Group], ghost_rounds: int) -> Attention | None:
    who = f"{member.display_name} <{member.address}>"
    if member.status is MemberStatus.DISABLED:
        return Attention(who, f"address bounced ({member.bounce_score} times)", "disabled: sent nothing more")
    if member.bounce_score:
        return Attention(
            who, f"address bounced ({member.bounce_score} times)", "still sending; disabled if it goes on"
        )
    if member.silent_rounds >= SILENT_ATTENTION:
        done = (
            f"paused after {ghost_rounds} silent rounds and told how to come back"
            if member.status is MemberStatus.PAUSED
            else "reminded each round"
        )
        return Attention(who, f"silent {member.silent_rounds} rounds in a row", done)
    if len(groups) < ATTENTION_AFTER_ROUNDS:
        return None
    if not any(g.result() is Result.MET for g in groups):
        partners_silent = all(
            all(
                g.outcomes.get(other) is None or g.outcomes[other].result is Result.NO_REPLY
                for other in g.members
                if other != member.id
            )
            for g in groups
        )
        answered = any(
            g.outcomes.get(member.id) is not None and g.outcomes[member.id].result is not Result.NO_REPLY
            for g in groups
        )
        if partners_silent and answered:
            return Attention(
                who,
                f"partners never replied ({len(groups)} rounds)",
                "partners reminded; new partner each round",
            )
        return Attention(
            who, f"never met anyone ({len(groups)} rounds)", "kept in the rounds with new partners"
        )
    return None
