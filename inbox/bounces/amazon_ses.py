"""Amazon SES bounce notifications delivered by email through SNS: a JSON body (an SNS envelope
whose "Message" is itself JSON, or the SES event alone) with notificationType "Bounce" and a
bounceType of "Permanent", "Transient" or "Undetermined". SES's own emailed DSNs are read by dsn."""

from __future__ import annotations

import json

from inbox.bounces.base import Finding, Mail, canonical_all


def detect(mail: Mail) -> Finding | None:
    if not _from_amazon(mail):
        return None  # a person pasting such JSON to us is not a bounce
    event = _event(mail.parsed.full_text)
    if event is None or str(event.get("notificationType") or event.get("eventType")) != "Bounce":
        return None
    bounce = event.get("bounce")
    if not isinstance(bounce, dict):
        return Finding(permanence_known=True)
    recipients = bounce.get("bouncedRecipients")
    addresses = (
        canonical_all(str(r.get("emailAddress", "")) for r in recipients if isinstance(r, dict))
        if isinstance(recipients, list)
        else frozenset()
    )
    # "Undetermined" means SES could not tell; only "Permanent" may count against a member.
    if bounce.get("bounceType") == "Permanent":
        return Finding(permanent=addresses, permanence_known=True)
    return Finding(temporary=addresses, permanence_known=True)


def _from_amazon(mail: Mail) -> bool:
    sender_domain = mail.parsed.sender.rpartition("@")[2]
    return "x-amz-sns-message-id" in mail.parsed.headers or sender_domain.endswith(
        ("amazonaws.com", "amazonses.com")
    )


def _event(text: str) -> dict | None:
    body = text.strip()
    if not body.startswith("{"):
        return None
    # SNS folds nothing, but some relays wrap long lines; the JSON ends at the last brace.
    body = body[: body.rfind("}") + 1]
    try:
        outer = json.loads(body)
    except ValueError:
        try:
            outer = json.loads("".join(line.strip() for line in body.splitlines()))
        except ValueError:
            return None
    if not isinstance(outer, dict):
        return None
    inner = outer.get("Message")
    if isinstance(inner, str):
        try:
            outer = json.loads(inner)
        except ValueError:
            return None
    return outer if isinstance(outer, dict) else None
