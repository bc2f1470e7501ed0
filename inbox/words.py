"""Patterns made from tables of words: how the inbox recognises phrases in people's and servers' mail.

A table is a tuple of alternatives, each a regular expression ("mail delivery (?:system|service)");
``any_of`` makes one case-insensitive pattern of a table, between an optional start and end, so a
word list is edited as a list and never as one long expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def alternatives(fragments: Iterable[str]) -> str:
    """``(?:a)|(?:b)|...``: each fragment grouped, so a fragment's own ``|`` stays inside it."""
    return "|".join(f"(?:{fragment})" for fragment in fragments)


def any_of(fragments: Iterable[str], *, start: str = "", end: str = "") -> re.Pattern[str]:
    """``start``, then any of ``fragments``, then ``end``; case-insensitive."""
    return re.compile(f"{start}(?:{alternatives(fragments)}){end}", re.IGNORECASE)
