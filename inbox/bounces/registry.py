"""The detectors, in the order they are asked: exact formats first (a DSN's per-recipient
blocks, an SES notification, a known MTA's wording), flufl.bounce's heuristics next, the
plain-text reading after them, and last a returned original's recipient that the report names by
local part. The first detector that recognises the message answers, so a DSN that lists no
failure (e.g. "relayed") is never second-guessed from its text."""

from __future__ import annotations

from inbox.bounces import (
    amazon_ses,
    dragonfly,
    dsn,
    failed_recipients_header,
    flufl_detectors,
    returned_original,
    text,
)
from inbox.bounces.base import Detector, Finding, Mail

DETECTORS: tuple[tuple[str, Detector], ...] = (
    ("RFC 3464 DSN", dsn.detect),
    ("Amazon SES notification", amazon_ses.detect),
    ("DragonFly Mail Agent", dragonfly.detect),
    ("X-Failed-Recipients", failed_recipients_header.detect),
    ("flufl.bounce", flufl_detectors.detect),
    ("report text", text.detect),
    ("returned original's recipient", returned_original.detect),
)


def read_bounce(
    mail: Mail, detectors: tuple[tuple[str, Detector], ...] = DETECTORS
) -> tuple[str, Finding] | None:
    """The first detector's answer, with its name; None when no detector recognises the message."""
    for name, detector in detectors:
        try:
            finding = detector(mail)
        except Exception:  # a detector's bug on odd input must not lose the message
            continue
        if finding is not None:
            return name, finding
    return None
