"""Every email command, in the order the grammar tries them and the help email lists them.

A command is declared once, next to its handler, in the module of its family; a new family is one
more line here. Translations of the words and help lines go in ``TRANSLATIONS`` (language code ->
command name -> Phrasing), without touching the declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from inbox.commands import help as help_command
from inbox.commands import membership, outcomes, partners, preferences, privacy
from inbox.commands.declaration import Phrasing, Registry

TRANSLATIONS: Mapping[str, Mapping[str, Phrasing]] = MappingProxyType({})

COMMANDS = Registry(
    (
        *membership.COMMANDS,
        *preferences.COMMANDS,
        *outcomes.COMMANDS,
        *partners.COMMANDS,
        *privacy.COMMANDS,
        *help_command.COMMANDS,
    ),
    TRANSLATIONS,
)
