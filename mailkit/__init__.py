"""The mail toolkit: what inbox/ and mailer/ both know about email, each thing once.

- ``addresses``: canonical form, "our address or a plus-address of it", display names, address headers
  written so that folding cannot change them.
- ``header_text``: names and subjects as one safe line: encoded words decoded at input, none written.
- ``message_ids``: making and checking Message-IDs.
- ``policy``: the email policies (parsing, SMTP, trace headers, client) and their header registry.
- ``email_internals``: where we patch the ``email`` package's internals for speed (marked, version-checked).
- ``maildir``: Maildir file names, delivery order and the tmp/ -> new/ writer.
- ``tls``: the one TLS client context, for IMAP and SMTP.
- ``credentials`` and ``oauth2``: how we log in (password, password command, OAuth2 tokens).

Nothing here imports the rest of the project: it sits below inbox/ and mailer/.
"""
