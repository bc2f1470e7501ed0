"""Tokens: the secrets that prove a person received one of our emails.

A token is bound to a purpose (confirm_join, confirm_leave, confirm_forget, confirm_change, or the permanent
"member" token used for List-Unsubscribe) and to one member and address; confirmation tokens expire
and are single use.

Values are 160 random bits from ``secrets``, written in lower-case base32 (``[a-z2-7]{32}``). Lower
case without punctuation because a token travels through places that fold case or strip punctuation:
the plus-address ``local+TOKEN@domain`` (addresses are compared lower-cased), a subject line, a
command line ("case and punctuation do not matter"). The alphabet also lets a token be recognised
anywhere in a body.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from matcher.model import Member, Token, TokenPurpose
from matcher.store import Store

CONFIRM_JOIN = TokenPurpose.CONFIRM_JOIN
CONFIRM_LEAVE = TokenPurpose.CONFIRM_LEAVE
CONFIRM_FORGET = TokenPurpose.CONFIRM_FORGET
CONFIRM_CHANGE = TokenPurpose.CONFIRM_CHANGE
MEMBER = TokenPurpose.MEMBER
PURPOSES = frozenset(TokenPurpose)
CONFIRM_PURPOSES = frozenset({CONFIRM_JOIN, CONFIRM_LEAVE, CONFIRM_FORGET, CONFIRM_CHANGE})

TOKEN_BYTES = 20
TOKEN_CHARS = 32  # base32 of 20 bytes, no padding
_TOKEN_IN_TEXT = re.compile(r"(?<![a-z0-9])[a-z2-7]{32}(?![a-z0-9])")
# Enough to find the token in any honest message; bounds the lookups a hostile body can cause.
MAX_CANDIDATES = 20


class TokenError(ValueError):
    """A token cannot be issued as asked; the message says why (never the token itself)."""


def new_token_value() -> str:
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").rstrip("=").lower()


def looks_like_token(value: str) -> bool:
    return len(value) == TOKEN_CHARS and _TOKEN_IN_TEXT.fullmatch(value) is not None


def issue_token(
    store: Store,
    *,
    purpose: TokenPurpose | str,
    member: Member,
    now: datetime,
    days: int | None,
    message_id: str | None = None,
    command: Mapping[str, Any] | None = None,
) -> Token:
    """Create and store a token for ``member``'s current address; ``days=None`` never expires."""
    if purpose not in PURPOSES:
        raise TokenError(f"unknown token purpose {purpose!r}; expected one of {sorted(PURPOSES)}")
    if not member.address:
        raise TokenError(f"member {member.id} has no address to bind a token to")
    if days is not None and days < 1:
        raise TokenError(f"a {purpose} token must live at least one day, got {days}")
    token = Token(
        token=new_token_value(),
        purpose=TokenPurpose(purpose),
        address=member.address,
        member_id=member.id,
        created_at=now,
        expires_at=None if days is None else now + timedelta(days=days),
        message_id=message_id,
        command=dict(command or {}),
    )
    store.put(token)
    return token


def member_token(store: Store, member: Member, now: datetime) -> Token:
    """The member's permanent token (List-Unsubscribe), issued on first use."""
    existing = valid_member_token(store, member, now)
    if existing is not None:
        return existing
    return issue_token(store, purpose=MEMBER, member=member, now=now, days=None)


def valid_member_token(store: Store, member: Member, now: datetime) -> Token | None:
    """The member's permanent token if one is valid for their current address; issues none."""
    for token in store.find(Token, "member_id", member.id):
        if token.purpose == MEMBER and token.address == member.address and token.is_valid(now):
            return token
    return None


def lookup_token(store: Store, candidate: str) -> Token | None:
    """The stored token with exactly this value (whatever its state), else None."""
    value = candidate.strip().lower()
    if not looks_like_token(value):
        return None
    token = store.get(Token, value)
    # The index lookup found it by hash; compare in constant time before trusting the match.
    if token is None or not hmac.compare_digest(token.token.encode(), value.encode()):
        return None
    return token


def tokens_in_text(text: str) -> list[str]:
    """Candidate token values appearing in ``text`` (at most MAX_CANDIDATES, first seen first)."""
    found: list[str] = []
    for match in _TOKEN_IN_TEXT.finditer(text.lower()):
        value = match.group(0)
        if value not in found:
            found.append(value)
            if len(found) >= MAX_CANDIDATES:
                break
    return found


def lookup_tokens(store: Store, candidates: Iterable[str]) -> list[Token]:
    """The stored tokens among ``candidates``, in order, each once."""
    tokens: list[Token] = []
    seen: set[str] = set()
    for candidate in candidates:
        token = lookup_token(store, candidate)
        if token is not None and token.token not in seen:
            seen.add(token.token)
            tokens.append(token)
    return tokens


def mark_used(store: Store, token: Token, now: datetime) -> Token:
    token.used_at = now
    store.put(token)
    return token


def retire_member_tokens(store: Store, member_id: str, now: datetime) -> int:
    """Mark every unused token of the member used (after leaving); returns how many."""
    count = 0
    for token in store.find(Token, "member_id", member_id):
        if token.used_at is None:
            mark_used(store, token, now)
            count += 1
    return count


def delete_member_tokens(store: Store, member_id: str) -> int:
    """Remove every token of the member (erasure: tokens hold the address); returns how many."""
    tokens = store.find(Token, "member_id", member_id)
    for token in tokens:
        store.delete(token)
    return len(tokens)


def prune_tokens(store: Store, expired_before: datetime) -> int:
    """Delete the tokens that expired before ``expired_before``, used or not; returns how many.

    Callers keep a grace period after expiry so that a late reply gets a meaningful answer ("that
    code has expired", "you are already in") rather than "unknown code". Scans the table, so call it
    rarely (once a day). Member tokens have no expiry and stay while their member exists.
    """
    removed = 0
    for token in store.all(Token):
        if token.expires_at is not None and token.expires_at < expired_before:
            store.delete(token)
            removed += 1
    return removed
