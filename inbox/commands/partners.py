"""Wishes about partners: meet a group again after a good conversation, or never be grouped with
someone (and take either back). Kept private to the asking member (matcher/preferences.py): the
answers go to them alone and say nothing to anyone else.
"""

from __future__ import annotations

from inbox.commands import arguments
from inbox.commands.declaration import EmailCommand, Phrasing, Proof
from inbox.commands.request import Applied, Request, help_notice, not_member, reply, to_sender
from mailkit.addresses import canonical_address
from matcher import members as ops
from matcher import preferences, rematch
from matcher.model import Group, Member
from matcher.rounds import groups_of_member

NOT_A_REPLY = (
    "to keep this private and safe, we act on it only when you send it as a reply to an email we sent "
    "you: reply to this email with the same words"
)


def _meet_again(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "meet_again")], "meet again from a non-member")
    group = _group_about(request, member)
    if group is None:
        return Applied([to_sender(request, "no_group", {"command": "meet again"})], "meet again: no group")
    preferences.ask_meet_again(request.store, member, group)
    values = {"name": member.name, "partners": _partners(request, member, group), "wanted": True}
    return Applied([reply(request, "meet_again", member, values)], f"meet again asked for group {group.key}")


def _not_again(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "not_again")], "don't meet again from a non-member")
    group = request.reply_group(member)
    asked = [request.store.get(Group, key) for key in member.meet_again]
    if group is None and len(asked) == 1:
        group = asked[0]
    preferences.cancel_meet_again(request.store, member, group)
    partners = _partners(request, member, group) if group is not None else ["anyone"]
    values = {"name": member.name, "partners": partners, "wanted": False}
    return Applied([reply(request, "meet_again", member, values)], "meet again taken back")


def _proven_member(request: Request, command: str) -> Member | Applied:
    """The sender's record when it may act now (Proof.MAILBOX: a reply to our mail to that address);
    otherwise the answer saying why not, at the member's own address."""
    member = request.member()
    said = command.replace("_", " ")
    if member is None:
        return Applied([not_member(request, command)], f"{said} from a non-member")
    if not request.may_act_at_once(member):
        return Applied([help_notice(request, NOT_A_REPLY, member)], f"{said} without proof: asked to reply")
    return member


def _never_pair(request: Request) -> Applied:
    member = _proven_member(request, "never_pair")
    if isinstance(member, Applied):
        return member
    who = request.argument
    if not who:
        reason = "write who: 'never pair me with NAME' (someone you have met) or their email address"
        return Applied([help_notice(request, reason, member)], "never pair without a name")
    if "@" in who:
        address = canonical_address(who)
        if not address:
            reason = f"{who!r} is not an email address we can read"
            return Applied([help_notice(request, reason, member)], "never pair: unreadable address")
        if address == member.address:
            reason = "that is your own address"
            return Applied([help_notice(request, reason, member)], "never pair: own address")
        other = ops.find_member(request.store, address)
        # Whether the address is a member's stays unsaid: the answer is the same either way.
        entry, shown = (other.id if other is not None else address), address
    else:
        found = preferences.named(preferences.partners(request.store, member), who)
        if len(found) != 1:
            reason = _not_one(who, found, "the people you have been grouped with")
            return Applied([help_notice(request, reason, member)], f"never pair: {len(found)} people match")
        entry, shown = found[0].id, found[0].name or who
    preferences.add_never(request.store, member, entry)
    values = {"name": member.name, "who": shown, "removed": False}
    return Applied([reply(request, "never_pair", member, values)], "never pair recorded")


def _pair_again(request: Request) -> Applied:
    member = _proven_member(request, "pair_again")
    if isinstance(member, Applied):
        return member
    entries = preferences.never_entries(request.store, member)
    who = request.argument
    address = canonical_address(who) if "@" in who else ""
    if address:
        other = ops.find_member(request.store, address)
        found = [(e, s) for e, s in entries if e == address or (other is not None and e == other.id)]
    else:
        people = [m for m in (request.store.get(Member, e) for e, _ in entries) if m is not None]
        ids = {m.id for m in preferences.named(people, who)} if who else {e for e, _ in entries}
        found = [(e, s) for e, s in entries if e in ids]
    if len(found) != 1:
        listed = ", ".join(shown for _, shown in entries) or "nobody"
        reason = (
            f"we could not tell whom you meant by {who!r}; you asked never to be paired with: {listed}"
            if who
            else f"write whom you mean; you asked never to be paired with: {listed}"
        )
        return Applied([help_notice(request, reason, member)], f"pair again: {len(found)} entries match")
    entry, shown = found[0]
    preferences.remove_never(request.store, member, entry)
    values = {"name": member.name, "who": shown, "removed": True}
    return Applied([reply(request, "never_pair", member, values)], "never pair taken back")


def _rematch(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "rematch")], "rematch from a non-member")
    asked = rematch.ask(request.store, member, request.today)
    if asked.round_ is None:
        return Applied([to_sender(request, "no_group", {"command": "rematch"})], "rematch: no open round")
    values = {
        "name": member.name,
        "round_id": asked.round_.id,
        "outcome": str(asked.outcome),
        "meeting_week_end": asked.round_.meeting_week_end,
        "middle": rematch.middle_of_meeting_week(asked.round_),
    }
    return Applied([reply(request, "rematch", member, values)], f"rematch: {asked.outcome}")


def _group_about(request: Request, member: Member) -> Group | None:
    """The group the message replies about, else the member's latest group (open or closed)."""
    group = request.reply_group(member)
    if group is not None:
        return group
    groups = groups_of_member(request.store, member.id)
    return groups[-1] if groups else None


def _partners(request: Request, member: Member, group: Group) -> list[str]:
    return [ops.shown_name(request.store.get(Member, i)) for i in group.members if i != member.id]


def _not_one(who: str, found: list[Member], among: str) -> str:
    if not found:
        return f"we could not find {who!r} among {among}; write their email address instead"
    names = sorted({m.name for m in found})
    if len(names) < len(found):
        return f"{who!r} names more than one person you have met; write their email address instead"
    return f"{who!r} could be {' or '.join(names)}; write the full name"


MEET_AGAIN = EmailCommand(
    "meet_again",
    Phrasing(
        "meet again",
        "after a good conversation: if your partner says so too, you meet again next round",
        aliases=(
            r"keep(?:ing)?\s+(?:on\s+)?talking",
            r"(?:let'?s\s+)?meet\s+(?:(?:them|him|her|up)\s+)?again",
            r"(?:pair|match|group)\s+us\s+(?:up\s+|together\s+)?again",
            r"see\s+(?:them|him|her|each\s+other)\s+again",
        ),
    ),
    _meet_again,
)
NOT_AGAIN = EmailCommand(
    "not_again",
    Phrasing(
        "don't meet again",
        "take back your wish to meet again",
        aliases=(
            r"do\s+not\s+meet\s+again",
            r"dont\s+meet\s+again",
            r"(?:cancel|forget)\s+meet(?:ing)?\s+again",
        ),
    ),
    _not_again,
)
NEVER_PAIR = EmailCommand(
    "never_pair",
    Phrasing(
        "never pair me with",
        "someone you'd rather not meet; private, they are never told",
        usage="never pair me with NAME (or their email address)",
        aliases=(
            r"(?:(?:please\s+)?(?:don'?t|do\s+not)\s+(?:ever\s+)?|never\s+(?:ever\s+)?)"
            r"(?:pair|match|group|put|introduce)\s+me\s+(?:together\s+)?(?:with|to)",
            r"(?:stop|no\s+more)\s+(?:pairing|matching|grouping)\s+me\s+with",
            r"i\s+(?:don'?t|do\s+not)\s+want\s+to\s+(?:be\s+(?:paired|matched|grouped)\s+with|meet)"
            r"(?=\s+(?!again\b)\S.*\bagain\b|\s+\S+@)",
        ),
    ),
    _never_pair,
    argument=arguments.person,
    proof=Proof.MAILBOX,
)
PAIR_AGAIN = EmailCommand(
    "pair_again",
    Phrasing(
        "forget never pair",
        "take back a 'never pair me with'",
        usage="pair me with NAME again",
        aliases=(r"(?:you\s+(?:can|may)\s+)?(?:pair|match|group)\s+me\s+with(?=.*\bagain\W*$)",),
    ),
    _pair_again,
    argument=arguments.person,
    proof=Proof.MAILBOX,
)
REMATCH = EmailCommand(
    "rematch",
    Phrasing(
        "rematch",
        "your partner is gone or silent mid-round: we group you with someone else in the same position",
        aliases=(
            r"(?:a\s+)?new\s+(?:partner|match)",
            r"(?:can|could|may)\s+i\s+(?:please\s+)?(?:be\s+)?(?:re)?(?:matched|paired|grouped)\s+with\s+"
            r"(?:someone|somebody|anyone|anybody)\s+else",
            r"(?:please\s+)?(?:re)?(?:match|pair|group)\s+me\s+with\s+(?:someone|somebody|anyone)\s+else",
        ),
    ),
    _rematch,
)
COMMANDS = (MEET_AGAIN, NOT_AGAIN, NEVER_PAIR, PAIR_AGAIN, REMATCH)
