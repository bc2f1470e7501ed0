"""The argument grammars of the commands: what follows the command word, read into plain values.

Each command's declaration names its reader (``EmailCommand.argument``); the pause and frequency
parsers turn the kept text into a date or a number when the command is applied, so that the answer
to a bad argument can say exactly what was not understood. The words read here are English; a
second language brings its own readers in its own module.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, timedelta

MAX_VALUE_CHARS = 500
MAX_PAUSE_YEARS = 10
_INDEFINITE = frozenset(
    {"", "indefinitely", "indefinite", "until further notice", "for now", "for a while", "a while"}
)
# Leading decoration a person or their mail program puts before a word: bullets, quotes, brackets,
# and the courtesy in front of a request.
LEAD = (
    r"^[\s*•·\-–—\"'(\[]*"
    r"(?:(?:please|pls|plz|kindly|(?:i|we)(?:'?d| would) (?:like|love) to|(?:i|we) want to|let'?s"
    r"|(?:can|could|would) (?:you|we)(?:\s+please)?)[\s,]+)?"
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
# Inline (?i): people write these in any case.
_EVERY = re.compile(
    r"(?i)(?:once\s+)?every\s+(?:(?P<n>\d{1,3}|[a-z]+|2nd|3rd)\s+)?(?P<unit>months?|quarters?)\b"
)
_ONCE_A = re.compile(r"(?i)once\s+a\s+(?P<unit>month|quarter)\b")
_ADVERB = re.compile(r"(?i)(?P<word>monthly|quarterly)(?:[\s,.!]*(?:please|thanks|thank you))?[\s,.!]*$")
_FIELD_WORDS = r"full\s+name|name|organi[sz]ation|org|company|employer|about(?:\s+me)?|bio"
_FIELD_LINE = re.compile(rf"(?i)^[\s*•\-]*(?P<key>{_FIELD_WORDS})\s*[:=]\s*(?P<value>.*)$")
# "could you update my org to Acme", "my new company is Acme": a field in a sentence.
_LEAD_IN_BREAK = re.compile(r"(?:[,;:.!?]+|\s[-–—]+)\s+")
_CHANGE_MY = r"(?:update|change|set|correct)\s+my\s+"
_FIELD_SENTENCE = re.compile(
    rf"(?i)^(?:{_CHANGE_MY}(?P<key>{_FIELD_WORDS})\s+(?:to|as)|my\s+new\s+(?P<new>{_FIELD_WORDS})\s+is)"
    r"\s*[:=]?\s+(?P<value>.+?)(?:[\s,.!;]+(?:please|pls|thanks|thank\s+you))?[\s.!]*$"
)
PROFILE_SENTENCE = rf"{_CHANGE_MY}(?:{_FIELD_WORDS})\b"
# "I'd like to meet every two months": the frequency after what it is the frequency of.
_MEET_PREFIX = re.compile(
    r"(?i)^(?:meet(?:ing)?|be\s+(?:matched|paired|introduced)|get\s+(?:matched|paired))\s+"
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
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{8,200}$")
_REST_TAIL = re.compile(r"[\s.!?,;\"']+$")
_PAUSE_TRAILER = re.compile(
    r" [-–—] |[;(]|,(?! ?\d{4})| (?:please|pls|thanks|thank you|as|because|since|while|due)\b"
)
_FILLER = re.compile(r"(?i)^(?:me|us)(?![\w'])[\s,]*")
_PERSON_LEAD = re.compile(r"(?i)^(?:(?:together\s+)?with|to)\s+")
_PERSON_TAIL = re.compile(
    r"(?i)(?:(?:^|[\s,.!;]+)(?:(?:ever\s+)?again|please|pls|thanks|thank\s+you|ever)[\s,.!;]*|[\s,.!;]+)$"
)


def normal_line(line: str) -> str:
    """One line as compared with the words: NFKC, straight quotes, no surrounding space."""
    text = unicodedata.normalize("NFKC", line)
    text = text.translate({ord("’"): "'", ord("‘"): "'", ord("“"): '"', ord("”"): '"'})
    return text.strip()


# --- readers: (the rest of the command's line, the lines after it) -> the argument kept -----------


def plain(rest: str, following: list[str]) -> str:
    """The rest of the line without "me"/"us" in front or punctuation at the end ("pause me!")."""
    return _REST_TAIL.sub("", _FILLER.sub("", rest))[:MAX_VALUE_CHARS]


def reason(rest: str, following: list[str]) -> str:
    """Free text, as written: the rest of the line, else the next non-empty line ("missed\\nill")."""
    text = rest.strip() or next((line for line in following if line.strip()), "")
    return text.strip()[:MAX_VALUE_CHARS]


def person(rest: str, following: list[str]) -> str:
    """Who a wish is about, by name or address: "with Sam O'Neill again, please" reads "Sam O'Neill"."""
    text = _PERSON_LEAD.sub("", plain(rest, following))
    previous = None
    while previous != text:
        previous = text
        text = _PERSON_TAIL.sub("", text).strip(" \"'<>")
    return text


def confirmation_code(rest: str, following: list[str]) -> str:
    """The code after "confirm", or "" when the next word is ordinary text."""
    words = plain(rest, following).split()
    return words[0] if words and _looks_like_token(words[0]) else ""


def months_between(rest: str, following: list[str]) -> str:
    """ "every 2 months" read as "2"; anything else kept for parse_frequency to explain."""
    text = plain(rest, following)
    months = _frequency_months(text.lower())
    return str(months) if months is not None else text


def bare_frequency(line: str) -> str | None:
    """Frequency phrasings that lead a line without the word "frequency" ("every 2 months")."""
    months = _frequency_phrase(line)
    return str(months) if months is not None else None


def profile_fields(lines: list[str]) -> dict[str, str]:
    """``name: ...``, ``org: ...``, ``about: ...`` lines anywhere in the text; the first of each wins."""
    fields: dict[str, str] = {}
    for line in lines:
        matched = _FIELD_LINE.match(line) or _field_sentence(line)
        if matched is None:
            continue
        written = matched.group("key") or matched.groupdict().get("new") or ""
        key = _FIELD_KEYS[re.sub(r"\s+", " ", written.lower())]
        value = matched.group("value").strip()[:MAX_VALUE_CHARS]
        if value and key not in fields:
            fields[key] = value
    return fields


def _field_sentence(line: str) -> re.Match[str] | None:
    """A field in a sentence, perhaps after a lead-in ("I've moved - update my org to Acme")."""
    for start in (0, *(found.end() for found in _LEAD_IN_BREAK.finditer(line))):
        matched = _FIELD_SENTENCE.match(re.sub(LEAD, "", line[start:], flags=re.IGNORECASE))
        if matched is not None:
            return matched
    return None


def _looks_like_token(word: str) -> bool:
    # Random tokens are long or carry digits, "-" or "_"; the ordinary word after "confirm" in a
    # subject such as "Confirm your subscription" is short and all letters.
    return bool(_TOKEN.match(word)) and (len(word) >= 16 or not word.isalpha())


# --- values: parsed when the command is applied ---------------------------------------------------


def parse_pause(argument: str, today: date) -> date | None:
    """The date a pause ends ("2 months", "until 2027-03-01", "until 1 March"); None: indefinite.

    Raises ValueError with a message fit to show the member when the argument cannot be read or
    does not lie in the future.
    """
    text = re.sub(r"\s+", " ", normal_line(argument).lower()).rstrip(".!")
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
    text = normal_line(argument).lower().rstrip(".!")
    months = _frequency_months(text)
    if months is None:
        raise ValueError(
            "write the frequency as 1, 2 or 3 (months between meetings), e.g. 'frequency 2'; "
            f"got {_quote(argument)}"
        )
    if not 1 <= months <= 3:
        raise ValueError(f"the frequency must be 1, 2 or 3 months; got {_quote(argument)}")
    return months


def _frequency_phrase(line: str) -> int | None:
    text = _MEET_PREFIX.sub("", re.sub(LEAD, "", line, flags=re.IGNORECASE))
    every = _EVERY.match(text) or _ONCE_A.match(text)
    if every:
        return _every_months(every)
    adverb = _ADVERB.match(text)
    if adverb:
        return 1 if adverb.group("word").lower() == "monthly" else 3
    return None


def _frequency_months(text: str) -> int | None:
    text = text.strip()
    plain_number = re.match(r"(?:every\s+)?(?P<n>\d{1,3}|[a-z]+)(?![\w-])(?:\s+months?)?", text)
    if plain_number:
        count = _count(plain_number.group("n"))
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


_MONTHS: Mapping[str, int] = {
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
