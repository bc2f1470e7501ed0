"""Reading bounces: which addresses a delivery-failure report names, and whether the failure is
permanent.

One detector per module, each knowing one family of report formats (see base.Detector); the
registry asks them in order and the first that recognises the message answers. inbox/classify.py
asks ``read_bounce`` only for a message that ``bounce_signals`` says looks machine-sent.
"""

from inbox.bounces.base import Finding, Mail
from inbox.bounces.registry import DETECTORS, read_bounce
from inbox.bounces.signals import bounce_signals, is_warning_only

__all__ = ["DETECTORS", "Finding", "Mail", "bounce_signals", "is_warning_only", "read_bounce"]
