"""DragonFly Mail Agent (dma), the small MTA of DragonFly BSD and some Linux images: a plain-text
report "This is the DragonFly Mail Agent ..." with "There was an error delivering your mail to
<address>." and the remote server's answer, then "Message headers follow." - no DSN part."""

from __future__ import annotations

import re

from inbox.bounces.base import Finding, Mail, canonical_all, expired_after_temporary_failures

_MARK = re.compile(r"This is the DragonFly Mail Agent", re.IGNORECASE)
_FAILED = re.compile(r"There was an error delivering your mail to <([^<>\s]+)>", re.IGNORECASE)
_TEMPORARY_REPLY = re.compile(r"^\s*4\d\d[ -]", re.MULTILINE)


def detect(mail: Mail) -> Finding | None:
    text = mail.report_text
    if not _MARK.search(text):
        return None
    found = canonical_all(_FAILED.findall(text))
    # dma reports a failure only once it has given up, except for a 4xx it could not retry.
    if _TEMPORARY_REPLY.search(text) and not re.search(r"^\s*5\d\d[ -]", text, re.MULTILINE):
        return Finding(temporary=found)
    if expired_after_temporary_failures(text):
        return Finding(temporary=found)
    return Finding(permanent=found)
