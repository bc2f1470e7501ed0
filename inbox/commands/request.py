"""One person's message being applied, and the answers a command handler builds from it.

Handlers return plain data (``Applied``): the notices to send (see mailer/render.py for kinds and
values) and a short description of what was done for the log. They never send, never open a
transaction (the processor runs a whole message in one) and never raise on bad input: a command
that cannot be applied gets a clear answer instead (help with a reason, not_member, no_group).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from inbox.commands.declaration import Command, Proof, Registry
from inbox.parse import ParsedMessage
from inbox.questions import MAX_REFERENCES, answered_emails, question_answered, sent_only_to
from inbox.settings import InboxSettings
from mailkit.message_ids import is_usable_message_id, new_message_id
from matcher import members as ops
from matcher import tokens
from matcher.model import Group, Member, Notice, Token
from matcher.store import Store


@dataclass
class Applied:
    notices: list[Notice] = field(default_factory=list)
    action: str = ""  # what was done, for the log; never a token
    changed: bool = True  # False: the message was ignored (nothing done, nothing said)


@dataclass(frozen=True)
class Request:
    """One human message being applied, with what every handler needs."""

    store: Store
    settings: InboxSettings
    now: datetime
    parsed: ParsedMessage
    key: str  # the message key (dedup); answers are keyed by it
    command: Command | None
    tokens: list[Token]  # every stored token the message carries, most explicit first
    commands: Registry

    @property
    def sender(self) -> str:
        return self.parsed.sender

    @property
    def today(self) -> date:
        return self.settings.today(self.now)

    @property
    def argument(self) -> str:
        return self.command.argument if self.command is not None else ""

    def known_sender(self) -> Member | None:
        """The sender's record whatever its status (pending and left included)."""
        return ops.find_member(self.store, self.sender)

    def member(self) -> Member | None:
        """The sender's record if they are a member (active, paused or disabled)."""
        member = self.known_sender()
        return member if ops.is_member(member) else None

    def reply_group(self, member: Member) -> Group | None:
        """The group whose intro, follow-up or reminder this message answers, if ``member`` is in it."""
        question = question_answered(self.store, self.parsed.in_reply_to, member)
        return question.group if question is not None else None

    def may_act_at_once(self, member: Member) -> bool:
        """What the command's declared proof (``Proof``) allows for ``member``'s record: acting now,
        or (False) only after the address confirms."""
        declared = self.commands.get(self.command.name) if self.command is not None else None
        if declared is None or declared.proof is Proof.CONFIRM:
            return False
        return declared.proof is Proof.NONE or self.proves_mailbox(member)

    def proves_mailbox(self, member: Member) -> bool:
        """The message shows it came from someone who reads ``member``'s mail: it carries a token we
        sent to that address, or it replies to an email of ours that went to that address alone (a
        reply to mail several people received, such as a group's introduction, proves nobody's)."""
        for token in self.tokens:
            if token.address == member.address and token.member_id == member.id:
                if token.purpose == tokens.MEMBER and not token.is_valid(self.now):
                    continue
                return True
        return any(
            sent_only_to(entry, member.address)
            for entry in answered_emails(self.store, self.parsed.in_reply_to)
        )


# -- answers


def confirm_change(request: Request, member: Member, change: str) -> Applied:
    """The command, asked without proof of mailbox, is held until the member's address confirms
    it (``change`` says what it does, in our words: never the sender's text)."""
    command = request.command
    assert command is not None
    held = {"name": command.name, "argument": command.argument, "fields": dict(command.fields)}
    answer = confirmation(
        request, member, tokens.CONFIRM_CHANGE, "confirm_change", values={"change": change}, held=held
    )
    return Applied([answer], f"{command.name} without proof of mailbox: confirmation sent")


def held_command(token: Token) -> Command | None:
    """The command a confirm_change token holds, else None."""
    name = token.command.get("name")
    if not isinstance(name, str) or not name:
        return None
    fields = token.command.get("fields") or {}
    return Command(name, str(token.command.get("argument") or ""), MappingProxyType(dict(fields)))


def help_notice(
    request: Request, reason: str, member: Member | None = None, *, quoted: str = "", suggestion: str = ""
) -> Notice:
    """The list of commands to the sender; ``reason`` says what was not understood ("" for none),
    ``quoted`` the line we could not read and ``suggestion`` what they probably meant."""
    values: dict[str, Any] = {"reason": reason, "commands": request.commands.help_lines()}
    if quoted or suggestion:
        values.update(quoted=quoted, suggestion=suggestion)
    return reply(request, "help", member, values) if member else to_sender(request, "help", values)


def not_member(request: Request, command: str, to: str | None = None) -> Notice:
    values = {"command": request.commands.word(command)}
    return notice(request, "not_member", to or request.sender, values)


def already_active_values(request: Request, member: Member) -> dict[str, Any]:
    return {"name": member.name, "next_round_on": request.settings.next_round_on(request.now)}


def confirmation(
    request: Request,
    member: Member,
    purpose: str,
    kind: str,
    *,
    values: Mapping[str, Any] | None = None,
    held: Mapping[str, Any] | None = None,
) -> Notice:
    """A confirmation request: a fresh token, carried by an email whose Message-ID we choose (so a
    plain reply finds the token through In-Reply-To) and whose Reply-To is our plus-address with the
    token (so a reply finds it even when the client drops the threading headers). ``held``: what
    confirming does (the token keeps it); ``values``: more for the template."""
    message_id = new_message_id(request.settings.domain)
    token = tokens.issue_token(
        request.store,
        purpose=purpose,
        member=member,
        now=request.now,
        days=request.settings.limits.token_days,
        message_id=message_id,
        command=held,
    )
    assert token.expires_at is not None
    values = {
        "name": member.name,
        **(values or {}),
        "token": token.token,
        "expires_on": request.settings.today(token.expires_at),
    }
    answer = notice(request, kind, member.address, values)
    answer.message_id = message_id
    answer.token = token.token
    return answer


def to_sender(request: Request, kind: str, values: dict[str, Any]) -> Notice:
    """An answer to the sender: as a reply to their record when we hold one."""
    member = request.known_sender()
    if member is not None:
        return reply(request, kind, member, values)
    return notice(request, kind, request.sender, values)


def reply(request: Request, kind: str, member: Member, values: dict[str, Any]) -> Notice:
    """An answer to the member at their address, with their List-Unsubscribe token if any."""
    answer = notice(request, kind, member.address, values)
    valid = ops.is_member(member)
    token = tokens.valid_member_token(request.store, member, request.now) if valid else None
    if token is not None:
        answer.unsubscribe_token = token.token
    return answer


def notice(request: Request, kind: str, to: str, values: dict[str, Any]) -> Notice:
    # Threading headers are copied from the sender's message: only well-formed ids are, so that a
    # strange Message-ID costs the answer its threading, not the answer itself.
    parsed = request.parsed
    mid = parsed.message_id if is_usable_message_id(parsed.message_id) else None
    thread = [r for r in reversed(parsed.in_reply_to[:MAX_REFERENCES]) if is_usable_message_id(r)]
    if mid and mid not in thread:
        thread.append(mid)
    return Notice(
        kind=kind,
        to=[to],
        values=values,
        key=f"reply:{request.key}:{kind}",
        thread=thread if mid else [],
        auto_reply=True,
    )
