"""Reading people's answers to "Did you meet X?": a corpus of replies as mail clients write them
(tests/data/answers/<client>/<case>.eml, expected readings in expected.json), read from the raw
bytes as the inbox reads them (parse_message, strip_reply), then unit tests of the reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inbox.answers import ANSWER_WORDS, Answer, Doubt, Outcome, read_answer
from inbox.parse import parse_message
from inbox.reply_text import strip_reply

CORPUS = Path(__file__).parent / "data" / "answers"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_the_corpus_and_its_manifest_agree():
    files = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.eml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 100
    assert len({p.split("/")[0] for p in files}) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_answer_is_read_as_expected(name):
    expected = EXPECTED[name]
    parsed = parse_message((CORPUS / name).read_bytes())
    text = strip_reply(parsed.full_text)
    assert text == parsed.text
    # Nothing of the quoted follow-up is left: its "met" and "missed" would be read as answers.
    assert "Just reply" not in text and "Coffee Roulette" not in text and "round 2025-03" not in text, text
    answer = read_answer(text)
    assert answer is not None, text
    assert (answer.outcome.value, answer.comment) == (expected["outcome"], expected["comment"]), text


# --- the reader ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "outcome", "comment"),
    [
        ("yes", Outcome.MET, ""),
        ("Yes!!", Outcome.MET, ""),
        ("we did", Outcome.MET, ""),
        ("Y", Outcome.MET, ""),
        ("yes thanks!", Outcome.MET, ""),
        ("we met on Tuesday", Outcome.MET, "we met on Tuesday"),
        ("had a lovely chat", Outcome.MET, "had a lovely chat"),
        ("Definitely", Outcome.MET, ""),
        ("met", Outcome.MET, ""),
        ("👍", Outcome.MET, ""),
        ("no", Outcome.MISSED, ""),
        ("N", Outcome.MISSED, ""),
        ("not this time", Outcome.MISSED, ""),
        ("sadly not, she was ill", Outcome.MISSED, "she was ill"),
        ("we didn't manage it", Outcome.MISSED, "we didn't manage it"),
        ("missed - on leave", Outcome.MISSED, "on leave"),
        ("missed - no answer from Gus", Outcome.MISSED, "no answer from Gus"),
        ("Missed: no time this month", Outcome.MISSED, "no time this month"),
        ("couldn't find a time", Outcome.MISSED, "couldn't find a time"),
        ("it didn't happen", Outcome.MISSED, "it didn't happen"),
    ],
)
def test_plain_answers(text, outcome, comment):
    answer = read_answer(text)
    assert answer is not None
    assert (answer.outcome, answer.comment, answer.doubt) == (outcome, comment, Doubt.NONE)


@pytest.mark.parametrize(
    "text", ["not met", "didn't meet", "we did not meet", "no we didn't", "we never managed to meet"]
)
def test_a_negated_meeting_is_a_miss(text):
    assert read_answer(text) == Answer(Outcome.MISSED, read_answer(text).comment, Doubt.NONE, text)


def test_what_only_looks_like_a_no_is_not_read():
    assert read_answer("No problem, we met on Friday").outcome is Outcome.MET
    assert read_answer("Yes, no issues at all").comment == "no issues at all"
    # "no" counts as an answer at the start of a sentence only.
    assert read_answer("There was no coffee left but we met anyway").outcome is Outcome.MET


def test_the_first_clear_answer_wins_and_later_sentences_are_comment():
    answer = read_answer("Yes. Sadly we couldn't find a time for a second coffee.")
    assert answer.outcome is Outcome.MET
    assert answer.comment == "Sadly we couldn't find a time for a second coffee."
    assert answer.sentence == "Yes."


@pytest.mark.parametrize(
    ("text", "doubt"),
    [
        ("No, we met on Monday", Doubt.CONTRADICTS),
        ("We didn't meet but we had a quick call", Doubt.CONTRADICTS),
        ("yes and no", Doubt.HEDGED),
        ("maybe", Doubt.HEDGED),
        ("Not yet", Doubt.NOT_YET),
        ("we're meeting next week", Doubt.NOT_YET),
        ("haven't met yet", Doubt.NOT_YET),
        ("No, postponed to April", Doubt.NOT_YET),
        ("what is this?", Doubt.NO_ANSWER),
    ],
)
def test_unclear_answers_name_their_doubt_and_keep_what_was_written(text, doubt):
    assert read_answer(text) == Answer(Outcome.UNCLEAR, text, doubt, text)


def test_greetings_are_skipped_and_sign_offs_are_not_comment():
    text = "Hi Alice,\n\nYes - great chat about data.\nBob was brilliant.\n\nThanks,\nPriya"
    answer = read_answer(text)
    assert (answer.outcome, answer.comment) == (Outcome.MET, "great chat about data. Bob was brilliant.")
    assert read_answer("Yes we met\nPriya").comment == "we met"


def test_curly_apostrophes_and_case_do_not_matter():
    assert read_answer("WE DIDN’T MEET").outcome is Outcome.MISSED


@pytest.mark.parametrize("text", ["", "   \n\n", "\u200b"])
def test_no_words_is_no_answer(text):
    assert read_answer(text) is None


def test_a_language_without_words_is_an_error_not_english():
    assert "en" in ANSWER_WORDS
    with pytest.raises(ValueError, match="'xx'"):
        read_answer("yes", "xx")


def test_only_the_first_lines_are_read_whatever_the_size():
    answer = read_answer("Hello\n" * 20 + "yes")
    assert answer.outcome is Outcome.UNCLEAR
    assert read_answer("yes " * 100_000).outcome is Outcome.MET


# --- reply stripping the corpus needs ------------------------------------------------------------


def test_an_answer_followed_at_once_by_an_attribution_is_kept():
    attribution = "On 11 Mar 2025, at 09:00, UnMentoring <coffee@unmentoring.example.org> wrote:"
    assert strip_reply(f"Yes\n> {attribution}\n> Did you meet Bob?") == "Yes"
    assert strip_reply(f"Yes\n{attribution}\n> Did you meet Bob?") == "Yes"
    wrapped = (
        "On Tue, 11 Mar 2025 at 09:00, UnMentoring Programme Team\n<coffee@unmentoring.example.org> wrote:"
    )
    assert strip_reply(f"{wrapped}\n> Did you meet Bob?\n\nYes, on Friday") == "Yes, on Friday"


def test_welsh_outlook_quote_header_ends_the_reply():
    text = (
        "Do\n\nOddi wrth: UnMentoring <coffee@u.example.org>\nAnfonwyd: 11 Mawrth 2025 09:00\n"
        "At: Ann\nPwnc: x"
    )
    assert strip_reply(text) == "Do"


def test_a_missed_verb_then_a_dash_leaves_the_reason_as_written() -> None:
    answer = read_answer("didn't meet - I was on leave")
    assert answer is not None and (answer.outcome, answer.comment) == (Outcome.MISSED, "I was on leave")
    kept = read_answer("Met. Lovely chat - we're meeting again in April.")
    assert kept is not None and kept.comment.startswith("Lovely chat")
