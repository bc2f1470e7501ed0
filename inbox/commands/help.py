"""The help command: the list of commands, generated from their declarations."""

from __future__ import annotations

from inbox.commands.declaration import EmailCommand, Phrasing
from inbox.commands.request import Applied, Request, help_notice


def _help(request: Request) -> Applied:
    suggested = request.command.suggested if request.command is not None else ()
    if suggested:
        words = " or ".join(f"'{request.commands.word(name)}'" for name in suggested)
        reason = f"we could not tell whether you meant {words}; send the one you want on its own line"
        return Applied([help_notice(request, reason)], f"ambiguous ({', '.join(suggested)}): help sent")
    return Applied([help_notice(request, "")], "help sent")


HELP = EmailCommand("help", Phrasing("help", "this list"), _help)
COMMANDS = (HELP,)
