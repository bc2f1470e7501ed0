"""Email commands, each declared once: its words, its argument grammar, its handler, its help line
and the proof of mailbox it needs (declaration.py); collected in order by registry.py.

inbox/grammar.py reads a message's command with the registry's words, inbox/apply.py runs the
declared handler, and the help email lists the registry's help lines.
"""
