"""The email command grammar: which command a person's message asks for, and its argument.

See DESIGN.md "Email grammar". Commands lead one of the first non-empty lines of the reply text (or
the subject); case and punctuation do not matter, and "I met the team yesterday" is not a command.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType

from inbox.parse import ParsedMessage

COMMAND_NAMES = (
    "join",
    "confirm",
    "leave",
    "pause",
    "resume",
    "frequency",
    "met",
    "missed",
    "profile",
    "status",
    "help",
    "my_data",
    "forget_me",
)
BODY_LINES_READ = 5
MAX_VALUE_CHARS = 500
MAX_PAUSE_YEARS = 10
_INDEFINITE = frozenset(
    {"", "indefinitely", "indefinite", "until further notice", "for now", "for a while", "a while"}
)


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # True when the command came from the subject line only. The processor may prefer what the
    # reply context says (a reply to a confirmation confirms) over a subject such as "Re: Join".
    from_subject: bool = False


# Keyword alternatives per command, tried in this order against the start of a line.
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("forget_me", r"forget[\s-]*me|erase\s+me|(?:delete|erase)\s+(?:all\s+)?my\s+data"),
    ("my_data", r"(?:send\s+(?:me\s+)?)?my[\s-]*data"),
    ("join", r"sign\s+me\s+up|sign[\s-]*up|subscribe|join"),
    ("confirm", r"confirm"),
    ("leave", r"unsubscribe|opt[\s-]*out|leave|stop"),
    ("resume", r"resume|un-?pause"),
    ("pause", r"pause"),
    ("frequency", r"frequency"),
    ("missed", r"missed|did\s+not\s+meet|didn'?t\s+meet"),
    ("met", r"met"),
    ("profile", r"(?:update\s+(?:my\s+)?)?profile"),
    ("status", r"status"),
    ("help", r"help"),
)
# Leading decoration a person or their mail program puts before a word: bullets, quotes, brackets.
_LEAD = (
    r"^[\s*•·\-–—\"'(\[]*"
    r"(?:(?:please|pls|plz|kindly|i'?d like to|i would like to|i want to|(?:can|could) you"
    r"(?:\s+please)?)[\s,]+)?"
)
_KEYWORD_LINES = tuple(
    (name, re.compile(rf"{_LEAD}(?:{pattern})(?![\w'])(?P<rest>.*)$", re.IGNORECASE))
    for name, pattern in _KEYWORDS
)
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_ORDINAL_STEPS = {"other": 2, "second": 2, "2nd": 2, "third": 3, "3rd": 3}
_EVERY = re.compile(
    r"(?:once\s+)?every\s+(?:(?P<n>\d{1,3}|[a-z]+|2nd|3rd)\s+)?(?P<unit>months?|quarters?)\b",
    re.IGNORECASE,
)
_ONCE_A = re.compile(r"once\s+a\s+(?P<unit>month|quarter)\b", re.IGNORECASE)
_ADVERB = re.compile(
    r"(?P<word>monthly|quarterly)(?:[\s,.!]*(?:please|thanks|thank you))?[\s,.!]*$",
    re.IGNORECASE,
)
_FIELD_LINE = re.compile(
    r"^[\s*•\-]*(?P<key>full\s+name|name|organi[sz]ation|org|company|employer|about(?:\s+me)?"
    r"|bio)\s*[:=]\s*(?P<value>.*)$",
    re.IGNORECASE,
)
_FIELD_KEYS = {
    "name": "name",
    "full name": "name",
    "org": "org",
    "organisation": "org",
    "organization": "org",
    "company": "org",
    "employer": "org",
    "about": "about",
    "about me": "about",
    "bio": "about",
}
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|rv|antw|doorst|réf|ref|enc|odp|ynt|r)\s*(?:\[\d+\])?\s*:"
    r"\s*|\[[^\]]{0,40}\]\s*|\([^)]{0,40}\)\s*)+",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{8,200}$")
_REST_LEAD = re.compile(r"^[\s:;,.\-–—=!]+")
_REST_TAIL = re.compile(r"[\s.!?,;\"']+$")
_PAUSE_TRAILER = re.compile(
    r" [-–—] |[;(]|,(?! ?\d{4})| (?:please|pls|thanks|thank you|as|because|since|while|due)\b"
)
_FILLER = re.compile(r"^(?:me|us)(?![\w'])[\s,]*", re.IGNORECASE)


def read_command(parsed: ParsedMessage) -> Command | None:
    """The command a message asks for, from its first non-empty lines or else its subject."""
    lines = [line for line in (_normal_line(raw) for raw in parsed.text.split("\n")) if line]
    for index, line in enumerate(lines[:BODY_LINES_READ]):
        command = _command_in_line(line, following=lines[index + 1 :])
        if command is not None:
            return _with_fields(command, lines)
    subject = _normal_line(_SUBJECT_PREFIX.sub("", _normal_line(parsed.subject)))
    if subject:
        command = _command_in_line(subject, following=[])
        if command is not None:
            return _with_fields(Command(command.name, command.argument, from_subject=True), lines)
    return None


def parse_pause(argument: str, today: date) -> date | None:
    """The date a pause ends ("2 months", "until 2027-03-01", "until 1 March"); None: indefinite.

    Raises ValueError with a message fit to show the member when the argument cannot be read or
    does not lie in the future.
    """
    text = re.sub(r"\s+", " ", _normal_line(argument).lower()).rstrip(".!")
    if text in _INDEFINITE:
        return None
    # People add a reason or a courtesy: "for 2 months please - it's budget season".
    text = _PAUSE_TRAILER.split(text, maxsplit=1)[0].strip().rstrip(".!")
    if text in _INDEFINITE:
        return None
    text = re.sub(r"^(?:for )?(?:the )?", "", text)
    text = re.sub(r"^next (?=[a-z])", "1 ", text)
    length = re.fullmatch(
        r"(?P<n>\d{1,4}|[a-z]+) ?(?P<unit>days?|weeks?|wks?|months?|mths?|mos?|years?|yrs?)",
        text,
    )
    if length:
        count = _count(length.group("n"))
        if count is None:
            raise ValueError(_pause_help(argument))
        end = _add_period(today, count, length.group("unit"))
    else:
        until = re.fullmatch(r"(?:until|till|til|to|up to|through|thru) (?:the )?(?P<when>.+)", text)
        end = _read_date(until.group("when") if until else text, today, argument)
    if end <= today:
        raise ValueError(f"the pause must end after today ({today.isoformat()}); got {_quote(argument)}")
    if end > _add_months(today, 12 * MAX_PAUSE_YEARS):
        raise ValueError(f"a pause can last at most {MAX_PAUSE_YEARS} years; got {_quote(argument)}")
    return end


def parse_frequency(argument: str) -> int:
    """Months between matches, 1 to 3, from "2", "every 2 months", "monthly"; else ValueError."""
    text = _normal_line(argument).lower().rstrip(".!")
    months = _frequency_months(text)
    if months is None:
        raise ValueError(
            "write the frequency as 1, 2 or 3 (months between meetings), e.g. 'frequency 2'; "
            f"got {_quote(argument)}"
        )
    if not 1 <= months <= 3:
        raise ValueError(f"the frequency must be 1, 2 or 3 months; got {_quote(argument)}")
    return months


# --- internals -----------------------------------------------------------------------------------


def _normal_line(line: str) -> str:
    text = unicodedata.normalize("NFKC", line)
    text = text.translate({ord("’"): "'", ord("‘"): "'", ord("“"): '"', ord("”"): '"'})
    return text.strip()


def _command_in_line(line: str, following: list[str]) -> Command | None:
    months = _frequency_phrase(line)
    if months is not None:
        return Command("frequency", str(months))
    for name, pattern in _KEYWORD_LINES:
        matched = pattern.match(line)
        if matched is None:
            continue
        rest = _REST_LEAD.sub("", matched.group("rest"))
        if re.match(r"(?:or\b|/)", rest, re.IGNORECASE):
            return None  # "met or missed?": a question quoted back, not an answer
        return Command(name, _argument(name, rest, following))
    return None


def _argument(name: str, rest: str, following: list[str]) -> str:
    if name == "missed":
        reason = rest.strip() or next((line for line in following if line.strip()), "")
        return reason.strip()[:MAX_VALUE_CHARS]
    rest = _REST_TAIL.sub("", _FILLER.sub("", rest))[:MAX_VALUE_CHARS]
    if name == "confirm":
        words = rest.split()
        return words[0] if words and _looks_like_token(words[0]) else ""
    if name == "frequency":
        months = _frequency_months(rest.lower())
        return str(months) if months is not None else rest
    return rest


def _looks_like_token(word: str) -> bool:
    # Random tokens are long or carry digits, "-" or "_"; the ordinary word after "confirm" in a
    # subject such as "Confirm your subscription" is short and all letters.
    return bool(_TOKEN.match(word)) and (len(word) >= 16 or not word.isalpha())


def _frequency_phrase(line: str) -> int | None:
    """Frequency phrasings that lead a line without the word "frequency"."""
    text = re.sub(_LEAD, "", line)
    every = _EVERY.match(text) or _ONCE_A.match(text)
    if every:
        return _every_months(every)
    adverb = _ADVERB.match(text)
    if adverb:
        return 1 if adverb.group("word").lower() == "monthly" else 3
    return None


def _frequency_months(text: str) -> int | None:
    text = text.strip()
    plain = re.match(r"(?:every\s+)?(?P<n>\d{1,3}|[a-z]+)(?![\w-])(?:\s+months?)?", text)
    if plain:
        count = _count(plain.group("n"))
        if count is not None:
            return count
    return _frequency_phrase(text)


def _every_months(matched: re.Match[str]) -> int | None:
    unit_months = 3 if matched.group("unit").lower().startswith("quarter") else 1
    n = (matched.groupdict().get("n") or "").lower()
    if not n:
        return unit_months
    steps = _ORDINAL_STEPS.get(n) or _count(n)
    return steps * unit_months if steps is not None else None


def _count(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


def _with_fields(command: Command, lines: list[str]) -> Command:
    if command.name not in ("join", "profile"):
        return command
    fields: dict[str, str] = {}
    for line in lines:
        matched = _FIELD_LINE.match(line)
        if matched is None:
            continue
        key = _FIELD_KEYS[re.sub(r"\s+", " ", matched.group("key").lower())]
        value = matched.group("value").strip()[:MAX_VALUE_CHARS]
        if value and key not in fields:
            fields[key] = value
    return Command(command.name, command.argument, MappingProxyType(fields), command.from_subject)


_MONTHS = {
    name.lower(): number
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
} | {"sept": 9}


def _read_date(text: str, today: date, argument: str) -> date:
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    if iso:
        return _make_date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)), argument)
    if re.fullmatch(r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}", text):
        raise ValueError(
            f"{_quote(argument)} could be read two ways; write the date as 2027-03-01 or 1 March 2027"
        )
    day_first = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)? (?:of )?([a-z]+),? ?(\d{4})?", text)
    month_first = re.fullmatch(r"([a-z]+) (\d{1,2})(?:st|nd|rd|th)?,? ?(\d{4})?", text)
    month_only = re.fullmatch(r"([a-z]+),? ?(\d{4})?", text)
    if day_first and day_first.group(2) in _MONTHS:
        day, month, year = int(day_first.group(1)), _MONTHS[day_first.group(2)], day_first.group(3)
    elif month_first and month_first.group(1) in _MONTHS:
        day, month, year = (
            int(month_first.group(2)),
            _MONTHS[month_first.group(1)],
            month_first.group(3),
        )
    elif month_only and month_only.group(1) in _MONTHS:
        day, month, year = 1, _MONTHS[month_only.group(1)], month_only.group(2)
    else:
        raise ValueError(_pause_help(argument))
    if year is not None:
        return _make_date(int(year), month, day, argument)
    candidate = _make_date(today.year, month, day, argument)
    # "until 1 March" means the next 1 March to come.
    return candidate if candidate > today else _make_date(today.year + 1, month, day, argument)


def _make_date(year: int, month: int, day: int, argument: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"{_quote(argument)} is not a real date") from None


def _add_period(today: date, count: int, unit: str) -> date:
    if count > 12 * 100:
        raise ValueError(f"a pause can last at most {MAX_PAUSE_YEARS} years")
    if unit.startswith("d"):
        return today + timedelta(days=count)
    if unit.startswith("w"):
        return today + timedelta(weeks=count)
    if unit.startswith("y"):
        return _add_months(today, 12 * count)
    return _add_months(today, count)


def _add_months(start: date, months: int) -> date:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    if year > date.max.year:
        return date.max
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _pause_help(argument: str) -> str:
    return (
        f"cannot read the pause {_quote(argument)}; write e.g. 'pause 2 months', "
        "'pause until 2027-03-01' or 'pause until 1 March'"
    )


def _quote(argument: str) -> str:
    text = argument.strip()
    return repr(text if len(text) <= 60 else text[:57] + "...")
