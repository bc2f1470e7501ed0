"""Member operations on the store: joining, leaving, pausing, profile, bounces, erasure, "my data".

Plain functions that take the member as loaded, store the changed record and return it. They do
not open transactions: the caller (the inbox processor) runs a whole message in one.

One record per address: a person who leaves and joins again gets their old record back (their
groups stay theirs). Erasure blanks the address, so a later join from that address starts afresh.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from matcher import preferences
from matcher.model import Group, Member, MemberStatus, Notice, Result, Round, Token
from matcher.rounds import groups_of_member
from matcher.store import Store
from matcher.tokens import delete_member_tokens, retire_member_tokens

# Statuses that make someone a member for member-only commands (pause, status, met...). A disabled
# member is one whose mail bounced: if they write to us, their mailbox evidently works again.
MEMBER_STATUSES = frozenset({MemberStatus.ACTIVE, MemberStatus.PAUSED, MemberStatus.DISABLED})
PROFILE_FIELDS = ("name", "org", "about")
FIELD_MAX_CHARS = {"name": 200, "org": 200, "about": 500}
FREQUENCIES = (1, 2, 3)
FORMER_MEMBER = "a former member"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


class MemberError(ValueError):
    """A member operation that cannot be applied; the message says why."""


def new_member_id(store: Store) -> str:
    while True:
        candidate = secrets.token_hex(8)
        if store.get(Member, candidate) is None:
            return candidate


def find_member(store: Store, address: str) -> Member | None:
    """The (not erased) record for this canonical address, whatever its status."""
    if not address:
        return None
    for member in store.find(Member, "address", address.strip().lower()):
        if not member.erased:
            return member
    return None


def is_member(member: Member | None) -> bool:
    return member is not None and not member.erased and member.status in MEMBER_STATUSES


def clean_profile(fields: Mapping[str, str]) -> dict[str, str]:
    """The name/org/about values given, one line each, capped; other keys and empty values dropped.

    Line breaks and control characters go because these values end up in headers (names) and in
    other people's introductions.
    """
    cleaned: dict[str, str] = {}
    for key in PROFILE_FIELDS:
        value = fields.get(key)
        if not isinstance(value, str):
            continue
        value = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()[: FIELD_MAX_CHARS[key]].strip()
        if value:
            cleaned[key] = value
    return cleaned


def start_joining(store: Store, address: str, profile: Mapping[str, str], now: datetime) -> Member:
    """A pending record for ``address`` (new, or the person's old one) with the profile given."""
    existing = find_member(store, address)
    fields = clean_profile(profile)
    if existing is None:
        member = Member(
            id=new_member_id(store),
            address=address.strip().lower(),
            status=MemberStatus.PENDING,
            created_at=now,
            **fields,
        )
    else:
        if is_member(existing):
            raise MemberError(f"member {existing.id} is already {existing.status.value}")
        member = replace(existing, status=MemberStatus.PENDING, **fields)
    store.put(member)
    return member


def activate(store: Store, member: Member, now: datetime) -> Member:
    """Confirmed: active from now, with a clean slate for bounces and silence."""
    if member.erased:
        raise MemberError(f"member {member.id} was erased and cannot be activated")
    updated = replace(
        member,
        status=MemberStatus.ACTIVE,
        joined_at=now,
        left_at=None,
        pause_until=None,
        bounce_score=0,
        silent_rounds=0,
    )
    store.put(updated)
    return updated


def mark_left(store: Store, member: Member, now: datetime) -> Member:
    """Left: never paired again; their tokens stop working. The record stays for their groups."""
    updated = replace(member, status=MemberStatus.LEFT, left_at=now, pause_until=None)
    store.put(updated)
    retire_member_tokens(store, member.id, now)
    return updated


def pause(store: Store, member: Member, until: date | None) -> Member:
    """Skipped by rounds until ``until`` (None: until they say resume)."""
    updated = replace(member, status=MemberStatus.PAUSED, pause_until=until)
    store.put(updated)
    return updated


def resume(store: Store, member: Member) -> Member:
    """Active again. A disabled member who writes to us has a working mailbox: their score resets;
    a ghost coming back starts counting silent rounds afresh."""
    updated = replace(member, status=MemberStatus.ACTIVE, pause_until=None, bounce_score=0, silent_rounds=0)
    store.put(updated)
    return updated


def set_frequency(store: Store, member: Member, frequency: int) -> Member:
    if frequency not in FREQUENCIES:
        raise MemberError(f"frequency must be 1, 2 or 3, got {frequency}")
    updated = replace(member, frequency=frequency)
    store.put(updated)
    return updated


def update_profile(store: Store, member: Member, profile: Mapping[str, str]) -> Member:
    """Apply the name/org/about lines given; raises MemberError when there is none."""
    fields = clean_profile(profile)
    if not fields:
        raise MemberError("a profile update needs at least one line 'name: ...', 'org: ...' or 'about: ...'")
    updated = replace(member, **fields)
    store.put(updated)
    return updated


def record_bounce(store: Store, member: Member, threshold: int) -> tuple[Member, bool]:
    """One permanent bounce more; returns the member and whether this bounce disabled them."""
    score = member.bounce_score + 1
    disable = score >= threshold and member.status in (MemberStatus.ACTIVE, MemberStatus.PAUSED)
    updated = replace(member, bounce_score=score, status=MemberStatus.DISABLED if disable else member.status)
    store.put(updated)
    return updated, disable


def score_permanent_bounces(
    store: Store, addresses: Sequence[str], *, threshold: int, organisers: Sequence[str], today: date
) -> tuple[int, list[Notice]]:
    """+1 to the bounce score of each member among ``addresses`` (canonical; a bounce message or an
    SMTP refusal told us). Returns how many members were scored and the notices telling the
    organisers about the addresses this disabled."""
    notices: list[Notice] = []
    scored = 0
    for address in dict.fromkeys(addresses):
        member = find_member(store, address)
        if member is None:
            continue
        member, disabled = record_bounce(store, member, threshold)
        scored += 1
        if disabled:
            notices.append(
                Notice(
                    kind="bounce_disabled",
                    to=list(organisers),
                    values={"address": member.address, "name": member.name, "score": member.bounce_score},
                    key=f"bounce_disabled:{member.id}:{today.isoformat()}",
                )
            )
    return scored, notices


def erase(store: Store, member: Member, now: datetime) -> Member:
    """Remove the personal data; keep the record (by id) so groups still count anonymously."""
    updated = replace(
        member,
        address="",
        name="",
        org="",
        about="",
        status=MemberStatus.LEFT,
        left_at=member.left_at or now,
        pause_until=None,
        erased=True,
        never_with=[],
        meet_again=[],
    )
    store.put(updated)
    delete_member_tokens(store, member.id)
    return updated


def shown_name(member: Member | None) -> str:
    """How a member is named to others; erased or unknown members are not named."""
    if member is None or member.erased:
        return FORMER_MEMBER
    return member.display_name


def history_counts(store: Store, member: Member) -> tuple[int, int]:
    """(groups so far, groups that met)."""
    groups = store.find(Group, "member", member.id)
    return len(groups), sum(1 for g in groups if g.met)


def member_data(store: Store, member: Member) -> dict[str, Any]:
    """Everything held about the member, as JSON-able data (the answer to "my data").

    Token values are secrets and are not included; their purpose and dates are.
    """
    record = member.to_dict()
    # Their own wishes, by name: ids mean nothing to a person (nobody else's data is shown).
    record["never_with"] = [shown for _, shown in preferences.never_entries(store, member)]
    groups = []
    for group in groups_of_member(store, member.id):
        round_ = store.get(Round, group.round_id)
        partners = [shown_name(store.get(Member, i)) for i in group.members if i != member.id]
        own = group.outcomes.get(member.id)
        result = group.result()
        groups.append(
            {
                "round": group.round_id,
                "group": group.number,
                "meeting_week": _meeting_week(round_),
                "partners": partners,
                "host": member.display_name
                if group.host == member.id
                else shown_name(store.get(Member, group.host)),
                "your_answer": None if own is None else own.to_dict(),
                "group_result": None if result is None else result.value,
            }
        )
    tokens = [
        {
            "purpose": t.purpose,
            "created_at": t.created_at.isoformat(),
            "expires_at": None if t.expires_at is None else t.expires_at.isoformat(),
            "used": t.used_at is not None,
        }
        for t in store.find(Token, "member_id", member.id)
    ]
    return {
        "member": record,
        "groups": groups,
        "met": sum(1 for g in groups if g["group_result"] == Result.MET.value),
        "tokens": tokens,
    }


def _meeting_week(round_: Round | None) -> str | None:
    if round_ is None:
        return None
    return f"{round_.meeting_week_start.isoformat()} to {round_.meeting_week_end.isoformat()}"
