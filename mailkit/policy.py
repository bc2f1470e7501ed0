"""The email policies we read and write mail with, each made once.

- ``PARSING``: reading inbound mail (``policy.default`` with the caching header registry).
- ``SMTP``: writing outbound mail: CRLF, 7-bit transfer encodings so the stored text is plain ASCII,
  no SMTPUTF8, headers folded once. Lines set raw (``set_raw``) are written as they are: callers only
  set raw lines they have checked.
- ``TRACE``: the trace headers our receivers put on top of a stored message (UTF-8 allowed, as the
  SMTP dialogue may carry it).
- ``CLIENT``: what a mail client writes and reads (the sandbox's ``send``/``read``, tests).
"""

from __future__ import annotations

import io
from email import policy
from email.message import EmailMessage

from mailkit.email_internals import BoundaryGenerator, CachingHeaderRegistry, CachingPolicy

PARSING = CachingPolicy(header_factory=CachingHeaderRegistry())
SMTP = CachingPolicy(
    linesep="\r\n", cte_type="7bit", utf8=False, header_factory=CachingHeaderRegistry(), refold_source="none"
)
TRACE = policy.default.clone(utf8=True)
CLIENT = policy.default


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as it goes on the wire: what ``msg.as_bytes(policy=SMTP)`` gives, a little faster."""
    out = io.BytesIO()
    BoundaryGenerator(out, mangle_from_=False, policy=SMTP).flatten(msg)
    return out.getvalue()
