"""Commands a member uses to shape their taking part: pause, resume, frequency, profile, status."""

from __future__ import annotations

from inbox.commands import arguments
from inbox.commands.arguments import parse_frequency, parse_pause
from inbox.commands.declaration import EmailCommand, Phrasing
from inbox.commands.request import Applied, Request, help_notice, not_member, reply
from matcher import members as ops
from matcher.model import Member


def _pause(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "pause")], "pause from a non-member")
    try:
        until = parse_pause(request.argument, request.today)
    except ValueError as exc:
        return Applied([help_notice(request, str(exc), member)], "pause not understood: help sent")
    member = ops.pause(request.store, member, until)
    return Applied(
        [reply(request, "paused", member, {"name": member.name, "until": until})],
        f"paused until {until.isoformat()}" if until else "paused until resumed",
    )


def _resume(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "resume")], "resume from a non-member")
    return resume_member(request, member, "resumed")


def resume_member(request: Request, member: Member, action: str) -> Applied:
    member = ops.resume(request.store, member)
    values = {"name": member.name, "next_round_on": request.settings.next_round_on(request.now)}
    return Applied([reply(request, "resumed", member, values)], action)


def _frequency(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "frequency")], "frequency from a non-member")
    try:
        frequency = parse_frequency(request.argument)
    except ValueError as exc:
        return Applied([help_notice(request, str(exc), member)], "frequency not understood: help sent")
    member = ops.set_frequency(request.store, member, frequency)
    values = {"name": member.name, "frequency": member.frequency}
    return Applied([reply(request, "frequency_changed", member, values)], f"frequency {frequency}")


def _profile(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "profile")], "profile from a non-member")
    try:
        member = ops.update_profile(request.store, member, request.command.fields if request.command else {})
    except ops.MemberError as exc:
        return Applied([help_notice(request, str(exc), member)], "profile without fields: help sent")
    values = {"name": member.name, "org": member.org, "about": member.about}
    return Applied([reply(request, "profile_updated", member, values)], "profile updated")


def _status(request: Request) -> Applied:
    member = request.member()
    if member is None:
        return Applied([not_member(request, "status")], "status from a non-member")
    rounds, met = ops.history_counts(request.store, member)
    values = {
        "name": member.name,
        "status": member.status.value,
        "org": member.org,
        "about": member.about,
        "frequency": member.frequency,
        "pause_until": member.pause_until,
        "next_round_on": request.settings.next_round_on(request.now),
        "rounds": rounds,
        "met": met,
    }
    return Applied([reply(request, "status", member, values)], "status sent")


PAUSE = EmailCommand(
    "pause",
    Phrasing("pause", 'take a break; "pause 2 months", "pause until YYYY-MM-DD"'),
    _pause,
)
RESUME = EmailCommand(
    "resume",
    Phrasing("resume", "come back from a break", aliases=(r"un-?pause",)),
    _resume,
)
FREQUENCY = EmailCommand(
    "frequency",
    Phrasing("frequency", "be matched every month, two months or three months", usage="frequency 1, 2 or 3"),
    _frequency,
    argument=arguments.months_between,
    bare=arguments.bare_frequency,
)
PROFILE = EmailCommand(
    "profile",
    Phrasing(
        "profile",
        "with lines name: ..., org: ..., about: ...",
        aliases=(
            r"update\s+(?:my\s+)?profile",
            arguments.PROFILE_SENTENCE,
            r"my\s+new\s+(?:org|organi[sz]ation|company|employer|name)\s+is",
        ),
    ),
    _profile,
    fields=True,
)
STATUS = EmailCommand(
    "status",
    Phrasing("status", "what we hold and when the next round is"),
    _status,
)
COMMANDS = (PAUSE, RESUME, FREQUENCY, PROFILE, STATUS)
