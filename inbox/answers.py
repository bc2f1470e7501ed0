"""Reading a person's own answer to "Did you meet X?": yes, no, or we cannot tell.

Pure: text in (the reply's new words, after strip_reply), an Answer out. The words of each language
are data (ANSWER_WORDS), so another programme language is a new entry, not new code.

The rule, in order:
- Greeting lines ("Hi Alice,") are skipped; the first sentence that holds an answer decides it
  ("first clear answer wins"). Later sentences are kept as the comment, never re-read, so
  "Yes. Unfortunately we couldn't find a time for a second coffee" is met.
- Answer words (yes, no, nope, we did, sadly not, Y, N...) count only at the start of a sentence,
  after an optional lead-in ("Hi Alice, yes we did"), so "there were no issues" is not a no.
  Statements (we met, had a lovely chat, didn't manage to meet, couldn't find a time...) count
  anywhere in the sentence. A negated meeting verb is a no: "not met", "we didn't meet".
- Phrases that only look like answers are read as nothing: "no problem, we met" is met.
- Unclear, with the doubt named: a sentence that says both yes and no ("no, we met", "we didn't
  meet but had a call"), a hedge ("maybe", "sort of"), not yet ("we're meeting next week",
  "postponed"; a no with a future meeting is not yet either), or no answer at all (a question).
The comment is the answer's paragraph from that sentence on, without the leading answer words,
the sign-off and the name under it; "" when all that is left is a thank-you.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import MappingProxyType

from inbox.words import alternatives, any_of

# Bounds on what is read: an answer is in the first lines of a reply.
MAX_LINES_READ = 8
MAX_CHARS_READ = 2_000


Outcome = StrEnum("Outcome", ["MET", "MISSED", "UNCLEAR"])


class Doubt(StrEnum):
    """Why an answer is unclear ("" for a clear one)."""

    NONE = ""
    NOT_YET = "not yet"
    CONTRADICTS = "says both yes and no"
    HEDGED = "neither yes nor no"
    NO_ANSWER = "no answer found"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    comment: str = ""  # the rest of the answer: the reason for a miss, a remark on a meeting
    doubt: Doubt = Doubt.NONE
    sentence: str = ""  # the sentence the outcome was read from (all the text when unclear)


@dataclass(frozen=True)
class AnswerWords:
    """One language's words, as regular-expression fragments matched case-insensitively on
    whole words (apostrophes already straightened)."""

    yes: tuple[str, ...]  # answer words, read at the start of a sentence only
    no: tuple[str, ...]
    met: tuple[str, ...]  # statements, read anywhere in a sentence
    missed: tuple[str, ...]
    negators: tuple[str, ...]  # a negator, then up to two words, then a meeting verb: missed
    meeting_verbs: tuple[str, ...]
    not_yet: tuple[str, ...]
    hedges: tuple[str, ...]
    neutral: tuple[str, ...]  # look like answers, are not ("no problem")
    lead_in: tuple[str, ...]  # may come before answer words in a sentence ("Hi Alice,")
    courtesy: tuple[str, ...]  # a comment made only of these is no comment
    sign_off: tuple[str, ...]  # a line starting with one of these (and nothing more) ends the comment


ENGLISH = AnswerWords(
    yes=(
        r"yes+",
        r"yep",
        r"yup",
        r"yeah",
        r"yea",
        r"ya",
        r"aye",
        r"y(?=\s*(?:$|[-–—,.!:]))",
        r"(?:we|i)\s+(?:sure\s+|certainly\s+|definitely\s+)?did(?!\s*(?:n't|\s+not))",
        r"(?:we|i)\s+have(?!\s*(?:n't|\s+not))(?=\s*(?:$|[-–—,.!:]))",
        r"sure\s+did",
        r"did\s+indeed",
        r"indeed",
        r"definitely",
        r"absolutely",
        r"certainly",
        r"of\s+course",
        r"correct",
        r"affirmative",
        r"done",
        r"met",
        r"👍(?:🏻|🏼|🏽|🏾|🏿)?",
        r"✅",
    ),
    no=(
        r"no+",
        r"nope",
        r"nah",
        r"n(?=\s*(?:$|[-–—,.!:]))",
        r"(?:we|i)\s+(?:did\s+not|didn't|have\s+not|haven't)",
        r"(?:sadly|unfortunately|afraid|i'm\s+afraid|i\s+am\s+afraid|regrettably|alas)[,\s]+(?:not|no)",
        r"missed",
        r"not\s+(?:this|last)\s+(?:time|month|round)",
        r"not\s+really",
        r"not\s+in\s+the\s+end",
        r"negative",
    ),
    met=(
        r"met",
        r"have\s+met",
        r"did\s+meet",
        r"(?:managed|got)\s+to\s+(?:meet|catch\s+up|chat|speak|talk)",
        r"got\s+together",
        r"caught\s+up",
        r"had\s+(?:a|an|our|the)\s+(?:[\w-]+\s+){0,3}?"
        r"(?:chat|coffee|call|conversation|catch[\s-]?up|meeting|natter|walk|lunch|tea|talk)",
        r"(?:great|good|lovely|nice|brilliant|fantastic|excellent|interesting|useful|fab)\s+"
        r"(?:chat|coffee|call|conversation|catch[\s-]?up|meeting|talk)",
        r"(?:we|i)\s+(?:spoke|talked|chatted)",
        r"it\s+(?:went|was)\s+(?:really\s+|very\s+)?(?:well|great|good|lovely)",
        r"👍(?:🏻|🏼|🏽|🏾|🏿)?",
        r"✅",
        r"✔️?",
    ),
    missed=(
        r"missed",
        r"cancel+ed",
        r"no[\s-]?show",
        r"stood\s+(?:me\s+|us\s+)?up",
        r"no[\s-]?one\s+(?:turned|showed)\s+up",
        r"fell\s+through",
        r"ran\s+out\s+of\s+time",
        r"(?:could\s+not|couldn't|did\s+not|didn't|never)\s+(?:\w+\s+){0,2}?"
        r"(?:find|get)\s+(?:a\s+)?(?:time|date|slot|round\s+to\s+it|around\s+to\s+it)",
        r"👎(?:🏻|🏼|🏽|🏾|🏿)?",
        r"❌",
    ),
    negators=(
        r"not",
        r"never",
        r"did\s+not",
        r"didn't",
        r"have\s+not",
        r"haven't",
        r"has\s+not",
        r"hasn't",
        r"could\s+not",
        r"couldn't",
        r"can't",
        r"cannot",
        r"wasn't\s+able\s+to",
        r"weren't\s+able\s+to",
        r"unable\s+to",
        r"failed\s+to",
    ),
    meeting_verbs=(
        r"meet",
        r"met",
        r"manage(?:d)?",
        r"make\s+it",
        r"happen(?:ed)?",
        r"connect(?:ed)?",
        r"catch\s+up",
        r"get\s+together",
        r"get\s+(?:round|around)\s+to\s+it",
        r"work\s+out",
    ),
    not_yet=(
        r"not\s+yet",
        r"(?:not|\w*n't|never)\s+(?:[\w']+\s+){0,3}?yet",
        r"(?:we're|we\s+are|i'm|i\s+am)\s+(?:\w+\s+)?(?:meeting|seeing|catching\s+up)",
        r"(?:will|going\s+to|planning\s+to|plan\s+to|hope\s+to|hoping\s+to)\s+(?:\w+\s+)?"
        r"(?:meet|catch\s+up|see)",
        r"meeting\s+(?:on|next|this|tomorrow|later|soon)",
        r"(?:re)?arranged\s+(?:to|for)",
        r"booked\s+in",
        r"(?:re)?scheduled",
        r"postponed",
        r"put\s+off",
        r"moved\s+(?:it\s+)?to",
        r"still\s+(?:trying|to\s+meet|planning)",
    ),
    hedges=(
        r"yes\s+and\s+no",
        r"maybe",
        r"perhaps",
        r"sort\s+of",
        r"kind\s+of",
        r"kinda",
        r"not\s+sure",
        r"unsure",
        r"(?:i\s+)?don't\s+know",
        r"dunno",
        r"no\s+idea",
        r"i\s+think\s+so",
        r"hard\s+to\s+say",
    ),
    neutral=(
        r"no\s+(?:problem|problems|worries|bother|rush|issues?|complaints|need|trouble)",
        r"not\s+a\s+problem",
        r"no\s+thanks?\s+needed",
    ),
    lead_in=(
        r"(?:hi|hello|hey|dear|morning|afternoon|evening)(?:\s+[\w'.-]+){0,3}",
        r"(?:thanks|thank\s+you|many\s+thanks|cheers|ta)(?:\s+(?:for|so)\s+[\w\s']{0,40}?)?",
        r"(?:oh|ah|well|so|sorry|apologies|hmm+|ha(?:ha)+|sadly|unfortunately|alas|regrettably)",
    ),
    courtesy=(
        r"thanks?",
        r"thank\s+you",
        r"thank\s+you\s+very\s+much",
        r"many\s+thanks",
        r"thanks\s+(?:a\s+lot|so\s+much|very\s+much)",
        r"cheers",
        r"ta",
        r"thx",
        r"sure",
        r"please",
        r"sorry",
        r"sadly",
        r"unfortunately",
    ),
    sign_off=(
        r"thanks?",
        r"thank\s+you",
        r"many\s+thanks",
        r"cheers",
        r"best",
        r"best\s+wishes",
        r"all\s+the\s+best",
        r"(?:kind|warm|best|many)?\s*regards",
        r"ta",
        r"thx",
        r"br",
        r"sent\s+from\s+my\s+.*",
    ),
)

ANSWER_WORDS: MappingProxyType[str, AnswerWords] = MappingProxyType({"en": ENGLISH})

_APOSTROPHES = {ord(c): "'" for c in "’‘ʼ`´"}
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=\S)\s+(?=[-–—]\s+(?:and|but)\b)")
_SEPARATORS = " \t,.:;!-–—~*"


def read_answer(text: str, language: str = "en") -> Answer | None:
    """The answer a reply gives to "Did you meet ...?"; None when it holds no words at all.

    A language without words here is a configuration error (ValueError), never English unnoticed."""
    try:
        words = ANSWER_WORDS[language]
    except KeyError:
        raise ValueError(f"no answer words for language {language!r}") from None
    lines = _lines(text)
    if not any(re.search(r"\w|[^\s\W]|[\u2600-\u27bf\U0001f300-\U0001faff]", line) for line in lines):
        return None
    patterns = _patterns(words)
    for index, line in enumerate(lines[:MAX_LINES_READ]):
        if patterns.greeting.fullmatch(line):
            continue
        for sentence in _SENTENCE_END.split(line):
            reading = _read_sentence(sentence, patterns)
            if reading is None:
                continue
            outcome, doubt = reading
            if outcome is Outcome.UNCLEAR:
                return Answer(outcome, _paragraph(lines, index, line), doubt, sentence.strip())
            rest = line[line.index(sentence) :]
            comment = _comment(_strip_answer_words(rest, patterns), lines[index + 1 :], patterns)
            return Answer(outcome, comment, doubt, sentence.strip())
    whole = " ".join(line for line in lines if line)
    return Answer(Outcome.UNCLEAR, whole, Doubt.NO_ANSWER, whole)


# --- internals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patterns:
    answer_start: re.Pattern[str]  # lead-ins then one answer word, at a sentence's start
    statements: re.Pattern[str]
    greeting: re.Pattern[str]
    courtesy: re.Pattern[str]
    sign_off: re.Pattern[str]


_GROUPS = ("neutral", "hedge", "not_yet", "missed", "met")


@cache
def _patterns(words: AnswerWords) -> _Patterns:
    word_end = r"(?![\w'])"
    lead = rf"(?:(?:{alternatives(words.lead_in)})[\s,.!:;\-–—]+)*"
    answer_start = re.compile(
        rf"^[\s\"'(\[*•·\-–—]*{lead}"
        rf"(?:(?P<hedge>{alternatives(words.hedges)})|(?P<neutral>{alternatives(words.neutral)})"
        rf"|(?P<yes>{alternatives(words.yes)})|(?P<no>{alternatives(words.no)})){word_end}",
        re.IGNORECASE,
    )
    negated = (
        rf"(?:{alternatives(words.negators)})\s+(?:[\w']+\s+){{0,2}}?(?:{alternatives(words.meeting_verbs)})"
    )
    # Alternatives are tried in this order at each position: "no problem" before "no", "not yet"
    # before "not met", a negated verb before the verb.
    groups = {
        "neutral": words.neutral,
        "hedge": words.hedges,
        "not_yet": words.not_yet,
        "missed": (negated, *words.missed),
        "met": words.met,
    }
    statements = re.compile(
        "|".join(rf"(?<![\w'])(?P<{name}>{alternatives(groups[name])}){word_end}" for name in _GROUPS),
        re.IGNORECASE,
    )
    greeting = any_of(words.lead_in[:1], start=r"^[\s,]*", end=r"[\s,.!:]*$")
    separators = rf"[\s{re.escape(_SEPARATORS)}]*"
    courtesy = re.compile(
        rf"^{separators}(?:(?:{alternatives(words.courtesy)}){separators})*[\s!.😊🙂🙏]*$", re.IGNORECASE
    )
    sign_off = any_of(words.sign_off, start=r"^\s*", end=r"(?:[\s,.!]+[\w'.-]+){0,3}[\s,.!]*$")
    return _Patterns(answer_start, statements, greeting, courtesy, sign_off)


def _lines(text: str) -> list[str]:
    normal = unicodedata.normalize("NFKC", text[:MAX_CHARS_READ]).translate(_APOSTROPHES)
    return [line.strip() for line in normal.splitlines()]


def _read_sentence(sentence: str, patterns: _Patterns) -> tuple[Outcome, Doubt] | None:
    """What one sentence says, or None when it holds no answer."""
    found: set[str] = set()
    start = patterns.answer_start.match(sentence)
    position = 0
    if start is not None:
        kind = start.lastgroup
        found.add({"yes": "met", "no": "missed"}.get(kind or "", kind or ""))
        position = start.end()
    for match in patterns.statements.finditer(sentence, position):
        found.add(match.lastgroup or "")
    found.discard("neutral")
    if not found:
        return None
    if "hedge" in found:
        return Outcome.UNCLEAR, Doubt.HEDGED
    if {"met", "missed"} <= found:
        return Outcome.UNCLEAR, Doubt.CONTRADICTS
    if "met" in found:
        return Outcome.MET, Doubt.NONE
    if "not_yet" in found:
        return Outcome.UNCLEAR, Doubt.NOT_YET
    return Outcome.MISSED, Doubt.NONE


def _strip_answer_words(text: str, patterns: _Patterns) -> str:
    """The text without its leading lead-ins and answer words ("Yes, we did - great chat")."""
    while True:
        # A missed answer written as a verb, then a dash or colon: the reason follows, as after "missed".
        statement = patterns.statements.match(text)
        if (
            statement is not None
            and statement.group("missed") is not None
            and re.match(r"\s*[-–—:]", text[statement.end() :])
        ):
            return text[statement.end() :].lstrip(_SEPARATORS)  # "didn't meet - I was on leave"
        start = patterns.answer_start.match(text)
        if start is None or start.lastgroup not in ("yes", "no"):
            return text.lstrip(_SEPARATORS)
        rest = text[start.end() :]
        if " " in start.group(start.lastgroup).strip() and re.match(r"\s+\w", rest):
            return text.lstrip(_SEPARATORS)  # an echo that goes on: "we didn't manage it"
        text = rest.lstrip(_SEPARATORS)
        if re.match(r"\s*[-–—:]", rest):
            return text  # what follows a dash or colon is the reason: "missed - no answer from Gus"


def _comment(first: str, following: list[str], patterns: _Patterns) -> str:
    """The answer's paragraph: its first line's rest, then lines up to a blank line or sign-off."""
    parts = [first]
    for line in following:
        if not line or patterns.sign_off.match(line):
            break
        parts.append(line)
    if len(parts) > 1 and _is_name(parts[-1]):
        parts.pop()
    comment = " ".join(part for part in parts if part).strip()
    if patterns.sign_off.match(comment) and not patterns.courtesy.match(comment):
        return ""
    return "" if patterns.courtesy.match(comment) else comment


def _paragraph(lines: list[str], index: int, line: str) -> str:
    parts = [line]
    for following in lines[index + 1 :]:
        if not following:
            break
        parts.append(following)
    return " ".join(parts)


def _is_name(line: str) -> bool:
    """A line that is only a name, as people sign under an answer ("Priya", "Dr Tom Okafor")."""
    words = line.split()
    return 0 < len(words) <= 3 and all(w[:1].isupper() and w.replace(".", "").isalpha() for w in words)
