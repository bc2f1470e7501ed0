"""Exim (and MXLogic, cPanel hosts, Mail.ru...) name the failed addresses in an
X-Failed-Recipients header on a failure report (also when it gave up retrying); Exim's delay
warnings carry none."""

from __future__ import annotations

from inbox.bounces.base import Finding, Mail, canonical_all, expired_after_temporary_failures


def detect(mail: Mail) -> Finding | None:
    value = mail.parsed.headers.get("x-failed-recipients", "")
    found = canonical_all(value.split(","))
    if not found:
        return None
    # Exim names them on a retry timeout too, when the address may well be fine.
    if expired_after_temporary_failures(mail.report_text):
        return Finding(temporary=found)
    return Finding(permanent=found)
