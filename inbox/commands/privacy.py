"""Commands about the data we hold on a person: a copy of it, or its erasure (after a confirmation)."""

from __future__ import annotations

import json

from inbox.commands.declaration import EmailCommand, Phrasing, Proof
from inbox.commands.request import Applied, Request, confirmation, not_member, reply
from matcher import members as ops
from matcher import tokens

DATA_FILE = "my-data.json"


def _my_data(request: Request) -> Applied:
    # Anyone we hold data about may have it, whatever their status (pending and left included).
    member = request.known_sender()
    if member is None:
        return Applied([not_member(request, "my_data")], "my data from an unknown address")
    data = ops.member_data(request.store, member)
    # The email says it in words; the file is the whole record, for a program or a regulator.
    copy = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    values = {"data": data, "attachments": {DATA_FILE: copy.encode("utf-8")}}
    return Applied([reply(request, "my_data", member, values)], "my data sent")


def _forget_me(request: Request) -> Applied:
    member = request.known_sender()
    if member is None:
        return Applied([not_member(request, "forget_me")], "forget me from an unknown address")
    return Applied(
        [confirmation(request, member, tokens.CONFIRM_FORGET, "confirm_forget")],
        "forget me: confirmation sent",
    )


MY_DATA = EmailCommand(
    "my_data",
    Phrasing(
        "my data",
        "a copy of everything we hold about you",
        aliases=(r"send\s+(?:me\s+)?my[\s-]*data",),
    ),
    _my_data,
)
FORGET_ME = EmailCommand(
    "forget_me",
    Phrasing(
        "forget me",
        "erase your data (we ask you to confirm)",
        aliases=(r"erase\s+me", r"(?:delete|erase)\s+(?:all\s+)?my\s+data"),
    ),
    _forget_me,
    proof=Proof.CONFIRM,
    confirms=tokens.CONFIRM_FORGET,
)
COMMANDS = (MY_DATA, FORGET_ME)
