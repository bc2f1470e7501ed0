"""`explain`: what the inbox would make of a raw message, as plain data (for the CLI and tests)."""

from __future__ import annotations

from collections.abc import Collection

from inbox.classify import Kind, classify
from inbox.grammar import read_command
from inbox.parse import parse_message


def explain(raw: bytes, *, own_addresses: Collection[str]) -> dict:
    """Classify a raw message and say why; never raises on any input."""
    parsed = parse_message(raw)
    classification = classify(raw, parsed, own_addresses=own_addresses)
    command = read_command(parsed) if classification.kind is Kind.COMMAND else None
    return {
        "kind": str(classification.kind),
        "command": command.name if command else None,
        "argument": command.argument if command else None,
        "sender": parsed.sender,
        "bounced_addresses": list(classification.bounced_addresses),
        "reason": classification.reason,
    }
