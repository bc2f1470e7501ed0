"""Tokens: unguessable, bound to purpose and member, expiring, single use, findable in mail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from matcher import tokens
from matcher.model import Member, MemberStatus, Token
from matcher.store import Store

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
PROGRAMME = "coffee@unmentoring.example"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "db.json") as opened:
        yield opened


def add_member(store: Store, address: str = "ann@example.org", member_id: str = "m1") -> Member:
    member = Member(id=member_id, address=address, status=MemberStatus.ACTIVE)
    with store.transaction():
        store.put(member)
    return member


def test_values_are_long_random_and_survive_case_folding() -> None:
    values = {tokens.new_token_value() for _ in range(2000)}
    assert len(values) == 2000
    for value in values:
        assert re.fullmatch(r"[a-z2-7]{32}", value)
        assert value.lower() == value  # a lower-cased plus-address keeps it intact


def test_issued_token_is_stored_bound_and_expires(store: Store) -> None:
    member = add_member(store)
    with store.transaction():
        token = tokens.issue_token(
            store, purpose=tokens.CONFIRM_JOIN, member=member, now=NOW, days=7, message_id="c1@x"
        )
    stored = store.get(Token, token.token)
    assert stored == token
    assert (stored.purpose, stored.address, stored.member_id) == (
        "confirm_join",
        "ann@example.org",
        "m1",
    )
    assert stored.expires_at == NOW + timedelta(days=7)
    assert stored.is_valid(NOW + timedelta(days=6, hours=23))
    assert not stored.is_valid(NOW + timedelta(days=7))
    assert store.find_one(Token, "message_id", "c1@x") == stored


def test_issue_refuses_unknown_purpose_and_erased_member(store: Store) -> None:
    member = add_member(store)
    with store.transaction():
        with pytest.raises(tokens.TokenError, match="unknown token purpose"):
            tokens.issue_token(store, purpose="admin", member=member, now=NOW, days=7)
        with pytest.raises(tokens.TokenError, match="no address"):
            tokens.issue_token(
                store,
                purpose=tokens.CONFIRM_JOIN,
                member=Member(id="gone", address=""),
                now=NOW,
                days=7,
            )
    assert store.all(Token) == []


def test_used_token_is_no_longer_valid(store: Store) -> None:
    member = add_member(store)
    with store.transaction():
        token = tokens.issue_token(store, purpose=tokens.CONFIRM_LEAVE, member=member, now=NOW, days=7)
        tokens.mark_used(store, token, NOW + timedelta(minutes=1))
    stored = store.get(Token, token.token)
    assert stored.used_at == NOW + timedelta(minutes=1)
    assert not stored.is_valid(NOW + timedelta(minutes=2))


def test_member_token_is_permanent_and_issued_once(store: Store) -> None:
    member = add_member(store)
    with store.transaction():
        first = tokens.member_token(store, member, NOW)
        again = tokens.member_token(store, member, NOW + timedelta(days=400))
    assert first == again
    assert first.purpose == tokens.MEMBER and first.expires_at is None
    assert first.is_valid(NOW + timedelta(days=4000))
    with store.transaction():
        assert tokens.retire_member_tokens(store, member.id, NOW) == 1
        assert tokens.valid_member_token(store, member, NOW) is None
        fresh = tokens.member_token(store, member, NOW)
    assert fresh.token != first.token


def test_lookup_is_exact_and_case_insensitive(store: Store) -> None:
    member = add_member(store)
    with store.transaction():
        token = tokens.issue_token(store, purpose=tokens.MEMBER, member=member, now=NOW, days=None)
    assert tokens.lookup_token(store, token.token) == token
    assert tokens.lookup_token(store, f"  {token.token.upper()} ") == token
    assert tokens.lookup_token(store, token.token[:-1] + ("a" if token.token[-1] != "a" else "b")) is None
    assert tokens.lookup_token(store, token.token[:-1]) is None
    assert tokens.lookup_token(store, "") is None


def test_tokens_are_found_in_text_but_not_inside_longer_words() -> None:
    value = tokens.new_token_value()
    text = f"> please confirm: {value}.\nsee https://x.example/{value}x and {'a' * 40}"
    assert tokens.tokens_in_text(text) == [value]
    assert tokens.tokens_in_text(text.upper()) == [value]
    many = " ".join(tokens.new_token_value() for _ in range(50))
    assert len(tokens.tokens_in_text(many)) == tokens.MAX_CANDIDATES


def test_prune_removes_expired_confirmations_only(store: Store) -> None:
    member = add_member(store)
    with store.transaction():
        old = tokens.issue_token(store, purpose=tokens.CONFIRM_JOIN, member=member, now=NOW, days=7)
        fresh = tokens.issue_token(
            store, purpose=tokens.CONFIRM_LEAVE, member=member, now=NOW + timedelta(days=5), days=7
        )
        permanent = tokens.member_token(store, member, NOW)
    with store.transaction():
        assert tokens.prune_tokens(store, NOW + timedelta(days=7)) == 0  # expired just now
        assert tokens.prune_tokens(store, NOW + timedelta(days=8)) == 1
    remaining = {t.token for t in store.all(Token)}
    assert remaining == {fresh.token, permanent.token}
    assert old.token not in remaining


def test_delete_member_tokens(store: Store) -> None:
    ann = add_member(store)
    bob = add_member(store, "bob@example.org", "m2")
    with store.transaction():
        tokens.member_token(store, ann, NOW)
        tokens.issue_token(store, purpose=tokens.CONFIRM_FORGET, member=ann, now=NOW, days=7)
        kept = tokens.member_token(store, bob, NOW)
        assert tokens.delete_member_tokens(store, ann.id) == 2
    assert store.all(Token) == [kept]
