"""What makes a notice an email besides its words, decided here and written by mailer/compose.py.

A ``Notice`` (matcher/model.py) says what to say, to whom and what it is about. The mailer adds:
the Message-ID (new unless the notice chose one), the thread (a group's follow-ups and reminders
answer its introduction; an answer to a person continues their conversation), Reply-To (an
introduction's replies go to the whole group; a confirmation's to our plus-address with its token;
a forwarded message's to the person who wrote it)
and the pictures and files (the organisers' summary; a member's own data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mailer.settings import MailSettings
from mailkit.addresses import plus_address
from mailkit.message_ids import new_message_id
from matcher.model import Notice, OutboxEntry
from matcher.store import Store

# The kinds whose replies go to every recipient: the people introduced talk among themselves.
REPLY_TO_RECIPIENTS = frozenset({"intro", "nudge"})
# The kinds that pass on what a person wrote (to the organisers): replies go to that person.
REPLY_TO_WRITER = frozenset({"unread"})
# The kind that opens a group's thread; the group's other mail is threaded under it.
GROUP_THREAD_START = "intro"


class Pictures(Protocol):
    """A notice value the mailer draws into PNGs (content-id -> bytes), shown inline and attached."""

    def draw(self) -> dict[str, bytes]: ...


@dataclass(frozen=True)
class Framing:
    message_id: str  # no brackets
    thread: tuple[str, ...] = ()  # Message-IDs, oldest first: In-Reply-To is the last, References all
    reply_to: tuple[str, ...] = ()  # empty: the programme address
    images: Mapping[str, bytes] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)  # file name -> bytes (compose.ATTACHMENT_TYPES)


def framing(store: Store, settings: MailSettings, notice: Notice) -> Framing:
    """The Message-ID, thread, Reply-To and pictures of ``notice``'s email."""
    pictures: Pictures | None = notice.values.get("pictures")
    return Framing(
        message_id=(notice.message_id or "").strip("<>") or new_message_id(settings.domain),
        thread=tuple(notice.thread) or _group_thread(store, notice),
        reply_to=_reply_to(settings, notice),
        images=pictures.draw() if pictures is not None else {},
        files=notice.values.get("attachments") or {},
    )


def _group_thread(store: Store, notice: Notice) -> tuple[str, ...]:
    if not notice.group_id or notice.kind == GROUP_THREAD_START:
        return ()
    # Each member's mail continues their own copy of the introduction (mail sent before copies
    # were per member continues the group's one introduction).
    recipients = {r.strip().lower() for r in notice.to}
    intros = [e for e in store.find(OutboxEntry, "group_id", notice.group_id) if e.kind == GROUP_THREAD_START]
    own = [e for e in intros if recipients <= {r.lower() for r in e.recipients}]
    return (own[0].message_id,) if own else ()


def _reply_to(settings: MailSettings, notice: Notice) -> tuple[str, ...]:
    if notice.token:
        return (plus_address(settings.programme_address, notice.token),)
    if notice.kind in REPLY_TO_RECIPIENTS:
        return tuple(notice.shown_to or notice.to)
    if notice.kind in REPLY_TO_WRITER and notice.values.get("address"):
        return (notice.values["address"],)
    return ()
