"""The domain: members, rounds, groups and their outcomes, and the records that keep the service honest
(processed messages, tokens, outbox entries).

Every record is a plain dataclass that converts to and from the JSON-able dict kept in the store. Dates and
datetimes are stored as ISO 8601 strings; unknown keys in stored data are ignored so that an older service can
read a newer file's known fields (migrations handle the rest, see matcher.store).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Self

# The statuses and steps: each value is its name in lower case (what the store and the logs hold).
MemberStatus = StrEnum("MemberStatus", ["PENDING", "ACTIVE", "PAUSED", "LEFT", "DISABLED"])
RoundState = StrEnum("RoundState", ["STARTED", "CLOSED"])
# A round's steps, in order; each is done once and recorded in ``Round.steps_done``.
RoundStep = StrEnum("RoundStep", ["INTROS", "NUDGES", "FOLLOWUPS", "REMINDERS", "CLOSED", "SUMMARY"])
# DISPUTED is a group's result only (never one member's answer): one member said met and another missed.
Result = StrEnum("Result", ["MET", "MISSED", "NO_REPLY", "DISPUTED"])
# What became of an inbound message (DUPLICATE is reported, never stored).
MessageStatus = StrEnum("MessageStatus", ["APPLIED", "IGNORED", "DUPLICATE", "FAILED", "QUARANTINED"])
OutboxStatus = StrEnum("OutboxStatus", ["QUEUED", "SENT", "FAILED"])
# MEMBER: the permanent List-Unsubscribe token; the others confirm a request (CONFIRM_CHANGE: a change to a
# membership or profile, held until confirmed).
TokenPurpose = StrEnum(
    "TokenPurpose", ["CONFIRM_JOIN", "CONFIRM_LEAVE", "CONFIRM_FORGET", "CONFIRM_CHANGE", "MEMBER"]
)


class Record:
    """Conversion between a dataclass and the dict the store holds."""

    def to_dict(self) -> dict[str, Any]:
        return {name: _dump(getattr(self, name)) for name, _ in _fields(type(self))}

    @classmethod
    def from_dict(cls, data: typing.Mapping[str, Any]) -> Self:
        return cls(**{name: _load(hint, data[name]) for name, hint in _fields(cls) if name in data})


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, type hint) of a record's fields; resolving hints is slow, and every store read needs them."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _load(inner[0], value)
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_load(item, v) for v in value]
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_load(item, v) for v in value)
    if origin is dict:
        _, item = typing.get_args(hint)
        return {k: _load(item, v) for k, v in value.items()}
    if isinstance(hint, type):
        if issubclass(hint, Record):
            return hint.from_dict(value)
        if hint is datetime:
            return datetime.fromisoformat(value)
        if hint is date:
            return date.fromisoformat(value)
        if issubclass(hint, StrEnum):
            return hint(value)
    return value


@dataclass
class Member(Record):
    id: str  # random and stable; groups refer to members by it, never by address
    address: str  # canonical (lower-case) address; "" once erased
    name: str = ""
    org: str = ""
    about: str = ""
    status: MemberStatus = MemberStatus.PENDING
    frequency: int = 1  # matched every N rounds, 1..3
    pause_until: date | None = None
    joined_at: datetime | None = None
    left_at: datetime | None = None
    bounce_score: int = 0
    silent_rounds: int = 0  # rounds in a row without any reply; 3 makes a ghost
    created_at: datetime | None = None
    erased: bool = False  # personal data removed on request; the record stays for anonymous counts
    # Wishes about partners, private to this member (matcher/preferences.py): member ids, or the
    # address of someone not (yet) a member, never to be grouped with; keys of groups to meet again.
    never_with: list[str] = field(default_factory=list)
    meet_again: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.name or self.address.split("@")[0]


@dataclass
class Round(Record):
    id: str  # e.g. "2026-12"
    ordinal: int  # months since year 0: orders rounds and measures "how long ago"
    starts_on: date
    meeting_week_start: date
    meeting_week_end: date
    followup_on: date
    seed: int
    state: RoundState = RoundState.STARTED
    created_at: datetime | None = None
    closed_at: datetime | None = None
    steps_done: list[RoundStep] = field(default_factory=list)  # idempotency of the round's steps
    unpaired: list[str] = field(default_factory=list)  # member ids nobody could be grouped with (told so)
    schedule: str = ""  # Calendar.schedule when the round started ("" before it was kept)
    waiting: list[str] = field(default_factory=list)  # member ids who asked for a rematch, not yet paired


@dataclass
class Outcome(Record):
    result: Result
    reason: str = ""
    at: datetime | None = None


@dataclass
class Group(Record):
    round_id: str
    number: int  # 1.. within the round
    members: list[str]  # member ids
    host: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    rematch: bool = False  # formed during the round from members whose partner was gone (matcher/rematch.py)

    @property
    def key(self) -> str:
        """The group's id in the store; records that refer to a group hold it (``OutboxEntry.group_id``)."""
        return f"{self.round_id}:{self.number}"

    @property
    def met(self) -> bool:
        """The group met: someone said so and nobody said otherwise (see ``result``)."""
        return self.result() is Result.MET

    def result(self) -> Result | None:
        """The group's result, the one place it is decided: disputed when one member says met and
        another missed (both answers stand; neither is taken for the truth), else met beats missed
        beats no reply (a partner's silence does not undo a "met"); None while nobody has said."""
        results = {o.result for o in self.outcomes.values()}
        if {Result.MET, Result.MISSED} <= results:
            return Result.DISPUTED
        for r in (Result.MET, Result.MISSED, Result.NO_REPLY):
            if r in results:
                return r
        return None


@dataclass
class ProcessedMessage(Record):
    key: str  # the Message-ID, else sha256 of the raw bytes
    status: MessageStatus
    at: datetime | None = None
    attempts: int = 0
    error: str = ""
    summary: str = ""  # kind and command, for the log and `status`


@dataclass
class UnreadMessage(Record):
    """A person's message we could read neither as a command nor as an answer, kept for the
    organisers (the summary's "What members wrote") and deleted with the member's data."""

    key: str  # the message key (inbox.parse.message_key)
    at: datetime
    sender: str  # canonical address
    name: str  # as the From header or the member record gives it; "" when neither does
    text: str  # what they wrote (the reply's new words), cut to a readable length
    reason: str  # why we could not act on it, as told to the sender
    member_id: str = ""  # "" for someone we do not know
    group: str = ""  # the group key ("2026-03:4") when it replied to mail about a group


@dataclass
class Token(Record):
    token: str
    purpose: TokenPurpose
    address: str
    member_id: str
    created_at: datetime
    expires_at: datetime | None  # None: valid while the member exists (List-Unsubscribe tokens)
    used_at: datetime | None = None
    message_id: str | None = None  # the email that carried it, so a plain reply to that email confirms
    # What confirming does besides its purpose, as asked by the unproven message: the command held
    # ({"name", "argument", "fields"}); for a join, the profile it gave. Never shown in the email.
    command: dict[str, Any] = field(default_factory=dict)

    def is_valid(self, now: datetime) -> bool:
        return self.used_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass
class OutboxEntry(Record):
    key: str  # idempotency key, e.g. "intro:2026-12:7": opaque, compared whole, never taken apart
    kind: str  # template name
    envelope_from: str
    recipients: list[str]
    message_id: str
    # The rendered message lives in a spool file (not in the store's document, which every commit rewrites):
    # its absolute path, "" when no message is kept (sent, or never buildable). See mailer.outbox.
    body_file: str = ""
    status: OutboxStatus = OutboxStatus.QUEUED
    attempts: int = 0
    last_error: str = ""
    queued_at: datetime | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    round_id: str = ""  # the round the email is about, if any
    group_id: str = ""  # the group it is about (Group.key): a reply to it names that group
    # The secret in this message's own return path (envelope_from, local+bounce-TOKEN@domain): a
    # bounce sent there names this entry, so its recipient. "" for mail with several recipients.
    return_token: str = ""

    def __post_init__(self) -> None:
        self.status = OutboxStatus(self.status)

    @property
    def raw(self) -> str:
        """The rendered message (7-bit), read from ``body_file``; "" when none is kept."""
        if not self.body_file:
            return ""
        try:
            with open(self.body_file, encoding="ascii", newline="") as f:
                return f.read()
        except FileNotFoundError:
            return ""


@dataclass
class Notice:
    """Something the service must say, to whom, and what it is about: plain data.

    The mailer turns it into an email (mailer/outbox.py, mailer/headers.py): it chooses the Message-ID
    unless one is given, threads a group's follow-ups under its introduction, sets Reply-To and draws
    the pictures. Not stored: the outbox stores the rendered message instead.
    """

    kind: str  # template name, e.g. "confirm_join", "welcome", "intro", "summary"
    to: list[str]  # who receives it (the envelope): each recipient of a group's mail gets a notice
    values: dict[str, Any] = field(default_factory=dict)  # what the template shows
    key: str = ""  # idempotency key for the outbox, e.g. "intro:2026-12:7"
    round_id: str = ""  # the round it is about (kept on the outbox entry)
    group_id: str = ""  # the group it is about (Group.key; kept on the outbox entry)
    token: str = ""  # a confirmation token the email carries: a reply to it confirms
    message_id: str | None = None  # a Message-ID chosen beforehand (no brackets): the token remembers it
    thread: list[str] = field(default_factory=list)  # the conversation it answers, oldest first
    unsubscribe_token: str = ""  # the member's token for List-Unsubscribe (single-recipient mail)
    auto_reply: bool = False  # an answer to a person's message, not mail we start
    # The To header when it names more than the recipient: each member's own copy of a group's
    # introduction shows the whole group. Empty: ``to``.
    shown_to: list[str] = field(default_factory=list)
