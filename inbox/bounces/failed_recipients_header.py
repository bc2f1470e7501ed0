"""Exim (and MXLogic, cPanel hosts, Mail.ru...) name the failed addresses in an
X-Failed-Recipients header on a permanent failure report; Exim's delay warnings carry none."""

from __future__ import annotations

from inbox.bounces.base import Finding, Mail, canonical_all


def detect(mail: Mail) -> Finding | None:
    value = mail.parsed.headers.get("x-failed-recipients", "")
    found = canonical_all(value.split(","))
    return Finding(permanent=found) if found else None
