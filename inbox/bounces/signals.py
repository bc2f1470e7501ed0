"""Does a message look machine-sent by a mail system (a delivery report), and is it only a delay
warning? Cheap header and subject tests, asked before any detector reads the body."""

from __future__ import annotations

import re

from inbox.parse import ParsedMessage
from inbox.words import any_of

# postmaster@ is also a person's mailbox (a mail admin writing to us): it counts only with a
# machine trait of its own.
_POSTMASTER = any_of((r"postmaster",), start="^", end="$")
_DAEMON_LOCAL = any_of((r"mailer-?daemon", r"mail-?daemon"), start="^", end="$")
_DAEMON_NAME = any_of(
    (r"mail delivery(?: (?:system|subsystem|service))?", r"mailer[- ]daemon", r"mail administrator")
    + (r"mail system administrator",)
)
# "MAILER-DAEMON <>", "MAILER-DAEMON", "<MAILER-DAEMON>" or a bare "<>": a From header the address
# parser rejects, so parsed.sender is empty.
_DAEMON_FROM = any_of((r"^\W*(?:mailer-?daemon|mail-?daemon|postmaster)\b", r"^[^<>@]*<\s*>\s*$"))
_BOUNCE_SUBJECT = any_of(
    (
        r"undeliver(?:able|ed)",
        r"mail delivery failed",
        r"delivery status notification",
        r"failure notice",
        r"returned mail",
        r"delivery failure",
        r"delivery has failed",
        r"mail system error",
        r"message delivery has failed",
        r"mail could not be delivered",
        r"message could not be delivered",
        r"non[- ]?delivery",
        r"permanent delivery failure",
        r"notice of delivery failure",
        r"delivery notification",
        r"failed delivery",
        r"message not delivered",
        r"could not send message",
        r"delivery problem",
        r"mail not delivered",
        r"unable to deliver",
        r"returned message",
        r"message status - undeliverable",
        r"non remis",
        r"non distribuable",
        r"rapport de non-remise",
        r"échec de (?:la )?remise",
        r"unzustellbar",
        r"nicht zustellbar",
        r"unzustellbare",
        r"fehler beim zustellen",
        r"onbestelbaar",
        r"niet bezorgd",
        r"no se puede entregar",
        r"no se pudo entregar",
        r"mensaje no entregado",
        r"não (?:foi possível )?entregue",
        r"mensagem não entregue",
        r"non recapitabile",
        r"impossibile recapitare",
        r"недоставленное сообщение",
        r"не удалось доставить",
        r"ошибка доставки",
        r"配信(?:エラー|不能|失敗)",
        r"メール配信に失敗",
        r"送信エラー",
        r"未送達",
        r"退信",
        r"系统退信",
        r"delayed mail",
        r"warning: message \S+ delayed",
        r"message delivery delay",
        r"delivery delayed",
        r"delivery status notification \(delay\)",
        r"there was an error sending your mail",
    ),
    start=r"^\s*",
)
_WARNING_SUBJECT = any_of(
    (
        r"warning:",
        r"delayed mail",
        r"delivery delayed",
        r"delivery status notification \(delay\)",
        r"message delivery delay",
        r"verzögert",
        r"zustellung verzögert",
        r"retardée",
        r"remise différée",
    ),
    start=r"^\s*",
)
_WARNING_TEXT = any_of(
    (
        r"this is a warning only",
        r"has not yet been delivered",
        r"no action is required on your part",
        r"will be retried",
        r"will continue to be made",
        r"delivery attempts will continue",
        r"still trying",
        r"will keep trying",
        r"will retry",
        r"continue trying",
        r"not been delivered yet",
        r"is delayed",
        r"temporarily deferred",
        r"delivery is delayed",
        r"delivery has been delayed",
        r"verzögert",
        r"retardée",
    ),
)


NOTIFICATION = "delivery notification (JSON)"
NULL_SENDER = "null envelope sender"
MAIL_SYSTEM = "sent by the mail system"
# Signals only a mail system gives; a subject or a JSON body alone may be a person's.
MACHINE_SIGNALS = frozenset({NULL_SENDER, MAIL_SYSTEM, "multipart/report", "X-Failed-Recipients"})


def bounce_signals(parsed: ParsedMessage) -> list[str]:
    """Why this message may be a delivery report; empty when nothing suggests it."""
    signals = [NULL_SENDER] if parsed.envelope_sender == "" else []
    traits = _report_traits(parsed)
    if _from_mail_system(parsed, also_machine_made=bool(signals or traits)):
        signals.append(MAIL_SYSTEM)
    return signals + traits


def _from_mail_system(parsed: ParsedMessage, *, also_machine_made: bool) -> bool:
    local = parsed.sender.rpartition("@")[0]
    envelope_local = (parsed.envelope_sender or "").rpartition("@")[0]
    name = parsed.sender_name.strip()
    if _POSTMASTER.match(local) or _POSTMASTER.fullmatch(name):
        automatic = parsed.headers.get("auto-submitted", "no").strip().lower() != "no"
        return also_machine_made or automatic
    return bool(
        _DAEMON_LOCAL.match(local)
        or _DAEMON_LOCAL.match(envelope_local)
        or _DAEMON_NAME.fullmatch(name)
        or (not parsed.sender and _DAEMON_FROM.match(parsed.headers.get("from", "")))
    )


def _report_traits(parsed: ParsedMessage) -> list[str]:
    traits = []
    content_type, report_type = content_type_of(parsed)
    if content_type == "multipart/report" and report_type != "disposition-notification":
        traits.append("multipart/report")
    if "x-failed-recipients" in parsed.headers:
        traits.append("X-Failed-Recipients")
    if "x-amz-sns-message-id" in parsed.headers or (
        parsed.full_text.lstrip().startswith("{") and '"notificationType"' in parsed.full_text
    ):
        traits.append(NOTIFICATION)
    if _BOUNCE_SUBJECT.match(parsed.subject):
        traits.append("bounce subject")
    return traits


def is_warning_only(parsed: ParsedMessage, report_text: str) -> bool:
    return bool(_WARNING_SUBJECT.match(parsed.subject) or _WARNING_TEXT.search(report_text))


def content_type_of(parsed: ParsedMessage) -> tuple[str, str]:
    value = parsed.headers.get("content-type", "").lower()
    content_type = value.split(";", 1)[0].strip()
    report = re.search(r"report-type\s*=\s*\"?([a-z0-9\-/.]+)", value)
    return content_type, report.group(1) if report else ""
