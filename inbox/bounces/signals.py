"""Does a message look machine-sent by a mail system (a delivery report), and is it only a delay
warning? Cheap header and subject tests, asked before any detector reads the body."""

from __future__ import annotations

import re

from inbox.parse import ParsedMessage

_DAEMON_LOCAL = re.compile(r"^(?:mailer-?daemon|mail-?daemon)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(
    r"mail delivery(?: (?:system|subsystem|service))?|mailer[- ]daemon|mail administrator"
    r"|mail system administrator",
    re.IGNORECASE,
)
# "MAILER-DAEMON <>", "MAILER-DAEMON", "<MAILER-DAEMON>" or a bare "<>": a From header the address
# parser rejects, so parsed.sender is empty.
_DAEMON_FROM = re.compile(
    r"^\W*(?:mailer-?daemon|mail-?daemon|postmaster)\b|^[^<>@]*<\s*>\s*$", re.IGNORECASE
)
# postmaster@ is also a person's mailbox (a mail admin writing to us): it counts only with a
# machine trait of its own.
_POSTMASTER = re.compile(r"^postmaster$", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:able|ed)|mail delivery failed|delivery status notification"
    r"|failure notice|returned mail|delivery failure|delivery has failed|mail system error"
    r"|message delivery has failed|mail could not be delivered|message could not be delivered"
    r"|non[- ]?delivery|permanent delivery failure|notice of delivery failure|delivery notification"
    r"|failed delivery|message not delivered|could not send message|delivery problem"
    r"|mail not delivered|unable to deliver|returned message|message status - undeliverable"
    r"|non remis|non distribuable|rapport de non-remise|échec de (?:la )?remise"
    r"|unzustellbar|nicht zustellbar|unzustellbare|fehler beim zustellen"
    r"|onbestelbaar|niet bezorgd|no se puede entregar|no se pudo entregar|mensaje no entregado"
    r"|não (?:foi possível )?entregue|mensagem não entregue|non recapitabile|impossibile recapitare"
    r"|недоставленное сообщение|не удалось доставить|ошибка доставки"
    r"|配信(?:エラー|不能|失敗)|メール配信に失敗|送信エラー|未送達|退信|系统退信"
    r"|delayed mail|warning: message \S+ delayed|message delivery delay|delivery delayed"
    r"|delivery status notification \(delay\)|there was an error sending your mail)",
    re.IGNORECASE,
)
_WARNING_SUBJECT = re.compile(
    r"^\s*(?:warning:|delayed mail|delivery delayed|delivery status notification \(delay\)"
    r"|message delivery delay|verzögert|zustellung verzögert|retardée|remise différée)",
    re.IGNORECASE,
)
_WARNING_TEXT = re.compile(
    r"this is a warning only|has not yet been delivered|no action is required on your part"
    r"|will be retried|will continue to be made|delivery attempts will continue|still trying"
    r"|will keep trying|will retry|continue trying|not been delivered yet|is delayed"
    r"|temporarily deferred|delivery is delayed|delivery has been delayed|verzögert|retardée",
    re.IGNORECASE,
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
