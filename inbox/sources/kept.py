"""Finding the kept mail (processed, quarantined) that names an address, for its erasure.

A message names an address when the address appears in its bytes or, decoded, in a header (RFC 2047
encoded words) or a part (base64, quoted-printable): a reply quoting an introduction names every member of
the group, so the check cannot stop at the sender.
"""

from __future__ import annotations

import email

from mailkit import policy


def names_address(raw: bytes, address: str) -> bool:
    wanted = address.strip().lower()
    if wanted.encode() in raw.lower():
        return True
    message = email.message_from_bytes(raw, policy=policy.CLIENT)
    for value in message.values():
        if wanted in str(value).lower():
            return True
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and wanted in payload.decode("utf-8", "replace").lower():
            return True
    return False
