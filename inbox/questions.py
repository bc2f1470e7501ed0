"""Which question a reply answers: the group, and the email about it that the reply is threaded to.

A reply names the mail it answers in In-Reply-To and References. Those ids are looked up among
the emails we sent about groups (outbox entries naming their group): a group's introduction, and
each member's follow-up and reminder. The reply answers that email only when it
comes from a member of the group it was sent to. ``question_answered`` is the one lookup of
"which group and which question" (the outcome commands, answers in context and ``explain`` all
ask it), so how outbox entries name their group can change here alone.

``answered_emails`` is the lookup under it, "which emails of ours does this reply answer, and to
whom did each go", shared with proof of mailbox (inbox/commands/request.py): a reply proves only
the mailbox of an email that went to that address alone (``sent_only_to``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailkit.addresses import canonical_address
from matcher.model import Group, Member, OutboxEntry, Round, RoundStep
from matcher.store import Store

# In-Reply-To and References ids looked at, newest first: a thread longer than this is not ours.
MAX_REFERENCES = 10


class Asked(StrEnum):
    """The email a reply is threaded to."""

    INTRO = "intro"
    FOLLOWUP = "followup"
    REMINDER = "reminder"


@dataclass(frozen=True)
class Question:
    group: Group
    asked: Asked
    message_id: str
    # True when a plain answer ("yes", "sadly not") answers "Did you meet?": in the thread of a
    # follow-up or reminder, and of the introduction once the follow-ups have gone out (before
    # that, "yes, Tuesday works" in the introduction's thread is about arranging, not an outcome).
    asks_did_you_meet: bool


def answered_emails(store: Store, thread_ids: Sequence[str]) -> Iterator[OutboxEntry]:
    """Our emails that a reply answers (``thread_ids``: In-Reply-To then References, newest first),
    in that order."""
    for mid in thread_ids[:MAX_REFERENCES]:
        entry = store.find_one(OutboxEntry, "message_id", mid)
        if entry is not None:
            yield entry


def sent_only_to(entry: OutboxEntry, address: str) -> bool:
    """The email went to ``address`` and to nobody else: reading it proves that mailbox."""
    return {canonical_address(r) for r in entry.recipients} == {canonical_address(address)}


def question_answered(store: Store, thread_ids: Sequence[str], member: Member) -> Question | None:
    """The email about a group that this reply answers (``thread_ids``: In-Reply-To then References,
    newest first), if ``member`` is in that group and was sent it; None otherwise."""
    for entry in answered_emails(store, thread_ids):
        found = _group_asked_by(store, entry, member)
        if found is None:
            continue
        group, asked = found
        if member.id not in group.members:
            continue
        question = asked is not Asked.INTRO or _followups_sent(store, group)
        return Question(group, asked, entry.message_id, question)
    return None


def _group_asked_by(store: Store, entry: OutboxEntry, member: Member) -> tuple[Group, Asked] | None:
    """The group an introduction, follow-up or reminder asks about; a follow-up or reminder only
    when it was sent to ``member``."""
    if not entry.group_id or entry.kind not in tuple(Asked):
        return None
    asked = Asked(entry.kind)
    if asked is not Asked.INTRO and member.address not in {canonical_address(r) for r in entry.recipients}:
        return None
    group = store.get(Group, entry.group_id)
    return (group, asked) if group is not None else None


def _followups_sent(store: Store, group: Group) -> bool:
    round_ = store.get(Round, group.round_id)
    return round_ is not None and RoundStep.FOLLOWUPS in round_.steps_done
