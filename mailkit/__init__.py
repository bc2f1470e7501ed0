"""The mail toolkit: what inbox/ and mailer/ both know about email, each thing once."""
