"""The one TLS client context, for IMAP and SMTP alike.

Certificates are always verified and host names always checked. A configured CA file is ADDED to
the system's root certificates (a private CA for the mail server), never put in their place.
"""

from __future__ import annotations

import ssl


class TlsSetupError(ValueError):
    """The TLS context could not be made; the message names the CA file and the cause."""


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A client context trusting the system's roots plus those in ``ca_file`` (PEM), if given."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TlsSetupError(f"cannot load the CA file {ca_file}: {reason}") from None
    return context
