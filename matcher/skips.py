"""Rounds skipped once (``round skip``): kept in the store's meta values, read into the Calendar."""

from __future__ import annotations

from matcher.calendar import parse_round_id
from matcher.model import Round
from matcher.store import Store

META_KEY = "skipped_rounds"


def skipped_rounds(store: Store) -> frozenset[str]:
    return frozenset(store.get_meta(META_KEY, []))


def skip_round(store: Store, round_id: str) -> None:
    """Skip the round once; ValueError for a malformed id or a round that has already started."""
    parse_round_id(round_id)
    if store.get(Round, round_id) is not None:
        raise ValueError(f"round {round_id} has already started; it can be closed early with 'round close'")
    with store.transaction():
        store.set_meta(META_KEY, sorted(skipped_rounds(store) | {round_id}))


def unskip_round(store: Store, round_id: str) -> bool:
    """Hold the round after all; whether it had been skipped."""
    skipped = skipped_rounds(store)
    if round_id not in skipped:
        return False
    with store.transaction():
        store.set_meta(META_KEY, sorted(skipped - {round_id}))
    return True
