"""flufl.bounce's own detectors (Mailman's: AOL, Exchange, GroupWise, qmail, Yahoo, SMTP32, ...)
for the formats our modules do not read themselves."""

from __future__ import annotations

from collections.abc import Collection

from flufl.bounce import all_failures

from inbox.bounces.base import Finding, Mail, addresses_in, canonical_all, expired_after_temporary_failures


def detect(mail: Mail) -> Finding | None:
    if mail.message is None:
        return None
    try:
        temporary, permanent = all_failures(mail.message)
    except Exception:  # flufl.bounce re-raises its detectors' errors; a failed scan finds nothing
        return None
    # Its pattern matchers also read the attached original, where the partner named in an
    # introduction would be taken for a failed recipient: keep what the report itself names.
    named = frozenset(addresses_in(mail.report_text))
    found_permanent, found_temporary = _decoded(permanent) & named, _decoded(temporary) & named
    if not (found_permanent or found_temporary):
        return None
    if expired_after_temporary_failures(mail.report_text):
        return Finding(temporary=found_permanent | found_temporary)
    return Finding(found_permanent, found_temporary - found_permanent)


def _decoded(found: Collection[bytes]) -> frozenset[str]:
    return canonical_all(item.decode("ascii", "replace") for item in found)
