"""The help command: the list of commands, generated from their declarations."""

from __future__ import annotations

from inbox.commands.declaration import EmailCommand, Phrasing
from inbox.commands.request import Applied, Request, help_notice


def _help(request: Request) -> Applied:
    return Applied([help_notice(request, "")], "help sent")


HELP = EmailCommand("help", Phrasing("help", "this list"), _help)
COMMANDS = (HELP,)
