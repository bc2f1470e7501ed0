"""A person's message we can read neither as a command nor as an answer: nothing of it is lost.

The sender is told what we could not read (the line, quoted), why, and what they probably meant
(the closest command word, or "met / missed" for a reply to "Did you meet?"), then the list of
commands. What they wrote is kept for the organisers (the summary's "What members wrote") and, if
the programme asks for it (``[programme] forward_unread``), forwarded to them at once with
Reply-To set to the sender, so that an organiser can simply answer.
"""

from __future__ import annotations

import difflib
import re

from inbox.commands.request import Applied, Request, help_notice
from matcher.model import Group, Member, Notice, UnreadMessage

TEXT_MAX_LINES = 12
TEXT_MAX_CHARS = 1_000
QUOTE_MAX_CHARS = 160
WORDS_LOOKED_AT = 6
CLOSENESS = 0.7  # difflib ratio: "joni" is join, "yes" is no command
ANSWER_SUGGESTION = "met / missed"


def not_understood(
    request: Request,
    reason: str,
    *,
    suggestion: str = "",
    member: Member | None = None,
    group: Group | None = None,
) -> Applied:
    """Answer the sender, keep what they wrote for the organisers and forward it if configured.

    ``reason`` completes "Sorry, we could not act on your email: ..."; ``suggestion`` defaults to
    the command word closest to what they wrote."""
    parsed = request.parsed
    text = unread_text(parsed.text) or unread_text(parsed.subject)
    quoted = _shortened(next((line for line in text.splitlines() if line.strip()), ""), QUOTE_MAX_CHARS)
    suggestion = suggestion or closest_command(request, text)
    member = member or request.known_sender()
    answer = help_notice(request, reason, member, quoted=quoted or "(nothing)", suggestion=suggestion)
    name = parsed.sender_name or (member.name if member is not None else "")
    unread = UnreadMessage(
        key=request.key,
        at=request.now,
        sender=parsed.sender,
        name=name,
        text=text,
        reason=reason,
        member_id=member.id if member is not None else "",
        group=group.key if group is not None else "",
    )
    forwards = _forward(request, unread)
    request.store.put(unread)
    kept = "kept for the organisers" + (" and forwarded" if forwards else "")
    return Applied([answer, *forwards], f"not understood ({reason}): answered, {kept}")


def unread_text(text: str) -> str:
    """What a person wrote, cut to a length an organiser reads at a glance (a cut is marked "...")."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    cut = lines[:TEXT_MAX_LINES]
    shown = "\n".join(cut).strip()
    if len(shown) > TEXT_MAX_CHARS:
        return _shortened(shown, TEXT_MAX_CHARS)
    return shown + ("\n..." if len(lines) > len(cut) else "")


def closest_command(request: Request, text: str) -> str:
    """The command word nearest to one of the first words written ("" when none is near): a
    command's alias said anywhere in them ("could you unsubscribe me"), else a misspelt word."""
    words = re.findall(r"[\w'-]+", text.lower())[:WORDS_LOOKED_AT]
    for word in words:
        for declared, pattern in request.commands.patterns(request.commands.languages):
            if len(word) > 2 and pattern.match(word):
                return request.commands.word(declared.name)
    vocabulary = {request.commands.word(name): name for name in request.commands.names}
    for word in words:
        close = difflib.get_close_matches(word, list(vocabulary), n=1, cutoff=CLOSENESS)
        if close:
            return close[0]
    return ""


def _forward(request: Request, unread: UnreadMessage) -> list[Notice]:
    """The message, to the configured addresses; at most as many a day per sender as we answer."""
    to = list(request.settings.forward_unread)
    if not to:
        return []
    today = unread.at.date()
    from_sender = request.store.find(UnreadMessage, "sender", unread.sender)
    earlier = sum(1 for u in from_sender if u.at.date() == today)
    if earlier >= request.settings.limits.replies_per_sender_per_day:
        return []
    # Replies go to the writer (values["address"]): mailer/headers.py.
    notice = Notice(
        kind="unread",
        to=to,
        values={
            "name": unread.name,
            "address": unread.sender,
            "at": unread.at.astimezone(request.settings.zone),
            "subject": request.parsed.subject,
            "text": unread.text,
            "reason": unread.reason,
            "group": unread.group,
        },
        key=f"unread:{request.key}",
    )
    return [notice]


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 3].rstrip() + "..."
