"""The command grammar: many phrasings of each command, things that are not commands, and the
pause and frequency arguments."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.commands.arguments import MAX_VALUE_CHARS, parse_frequency, parse_pause
from inbox.grammar import COMMAND_NAMES, Command, read_command
from inbox.parse import parse_message

TODAY = date(2026, 11, 21)


def message(body: str, subject: str = "Re: Your UnMentoring partner") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@example.org>"
    msg["To"] = "coffee@unmentoring.example.org"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes()


def command_of(body: str, subject: str = "Re: Your UnMentoring partner") -> Command | None:
    return read_command(parse_message(message(body, subject)))


@pytest.mark.parametrize(
    ("body", "name", "argument"),
    [
        ("met", "met", ""),
        ("Met!", "met", ""),
        ("MET.", "met", ""),
        ("met, thanks", "met", "thanks"),
        ("  Met - great chat", "met", "great chat"),
        ("missed", "missed", ""),
        ("missed - she was ill", "missed", "she was ill"),
        ("Missed: he was on leave.", "missed", "he was on leave."),
        ("missed\n\nShe was ill, we'll try again", "missed", "She was ill, we'll try again"),
        ("Didn't meet - diaries clashed", "missed", "diaries clashed"),
        ("did not meet", "missed", ""),
        ("join", "join", ""),
        ("Join please", "join", "please"),
        ("subscribe", "join", ""),
        ("Sign up", "join", ""),
        ("sign me up!", "join", ""),
        ("signup", "join", ""),
        ("confirm Xk3-pQ9_Lm2vT8sR4wZ1yA", "confirm", "Xk3-pQ9_Lm2vT8sR4wZ1yA"),
        ("CONFIRM: abcd1234efgh", "confirm", "abcd1234efgh"),
        ("confirm", "confirm", ""),
        ("leave", "leave", ""),
        ("Unsubscribe", "leave", ""),
        ("stop", "leave", ""),
        ("STOP!!!", "leave", ""),
        ("opt out", "leave", ""),
        ("please unsubscribe me", "leave", ""),
        ("pause", "pause", ""),
        ("pause until 2027-03-01", "pause", "until 2027-03-01"),
        ("Pause 2 months.", "pause", "2 months"),
        ("please pause me for 3 weeks", "pause", "for 3 weeks"),
        ("resume", "resume", ""),
        ("Unpause", "resume", ""),
        ("frequency 3", "frequency", "3"),
        ("Frequency: 2", "frequency", "2"),
        ("frequency every two months", "frequency", "2"),
        ("frequency 5", "frequency", "5"),
        ("every 2 months", "frequency", "2"),
        ("Every 3 months please", "frequency", "3"),
        ("every month", "frequency", "1"),
        ("every other month", "frequency", "2"),
        ("once a quarter", "frequency", "3"),
        ("every quarter", "frequency", "3"),
        ("monthly", "frequency", "1"),
        ("Monthly, please.", "frequency", "1"),
        ("quarterly", "frequency", "3"),
        ("profile", "profile", ""),
        ("update my profile", "profile", ""),
        ("status", "status", ""),
        ("Status?", "status", ""),
        ("help", "help", ""),
        ("Help!", "help", ""),
        ("my data", "my_data", ""),
        ("My data, please.", "my_data", "please"),
        ("mydata", "my_data", ""),
        ("forget me", "forget_me", ""),
        ("Forget-me", "forget_me", ""),
        ("delete my data", "forget_me", ""),
        ("I'd like to join", "join", ""),
        ("Could you pause me until March?", "pause", "until March"),
        ("I want to stop getting these", "leave", "getting these"),
        ("confirm abcdefghijklmnopqrstuv", "confirm", "abcdefghijklmnopqrstuv"),
        ("Confirm subscription", "confirm", ""),
        ("* met", "met", ""),
        ("“met”", "met", ""),
    ],
)
def test_phrasings(body, name, argument):
    command = command_of(body)
    assert command is not None, body
    assert (command.name, command.argument) == (name, argument)
    assert command.from_subject is False


@pytest.mark.parametrize(
    "body",
    [
        "I met the team yesterday",
        "We met last Tuesday",
        "Thanks for organising!",
        "Met or missed?",
        "metropolitan council",
        "Meta question: how does this work?",
        "Joiner needed",
        "Stopgap answer",
        "My database is down",
        "Monthly is too much for me",
        "every time I try the link breaks",
        "I want to meet more people from housing",
        "helpful, thanks",
        "statuses are confusing",
        "",
    ],
)
def test_not_commands(body):
    assert command_of(body, subject="Re: hello") is None


def test_keyword_may_follow_a_greeting_within_the_first_lines():
    assert command_of("Hi team,\n\nmet\n\nAnn").name == "met"


def test_only_the_first_five_non_empty_lines_are_read():
    filler = "\n".join(f"line {n}" for n in range(5))
    assert command_of(f"{filler}\nmet") is None
    four = "\n".join(f"line {n}" for n in range(4))
    assert command_of(f"{four}\nmet").name == "met"


def test_quoted_text_is_not_read_for_commands():
    body = "Thanks!\n\nOn Tue, 4 Mar 2025 at 09:00, UnMentoring <c@x.example> wrote:\n> met\n"
    assert command_of(body) is None


@pytest.mark.parametrize(
    ("subject", "name", "argument"),
    [
        ("join", "join", ""),
        ("Re: join", "join", ""),
        ("RE: Fwd: subscribe", "join", ""),
        ("AW: pause until 1 March", "pause", "until 1 March"),
        ("SV: met", "met", ""),
        ("[EXTERNAL] Re: unsubscribe", "leave", ""),
        ("Re: Confirm your UnMentoring subscription", "confirm", ""),
        ("Re: help", "help", ""),
    ],
)
def test_subject_commands(subject, name, argument):
    command = command_of("", subject=subject)
    assert command is not None
    assert (command.name, command.argument, command.from_subject) == (name, argument, True)


def test_body_command_wins_over_subject():
    command = command_of("missed", subject="Re: join")
    assert (command.name, command.from_subject) == ("missed", False)


@pytest.mark.parametrize(
    "subject",
    ["Re: Did you meet Alice?", "Re: Met or missed? Your coffee with Bob", "Re: Your partner"],
)
def test_our_own_subjects_are_not_commands(subject):
    assert command_of("Sounds good", subject=subject) is None


def test_join_fields():
    command = command_of(
        "join\nName: Ann Example\norganisation: Example Council\n"
        "about: I work on digital services: forms, payments, and open data.\n"
    )
    assert command.name == "join"
    assert dict(command.fields) == {
        "name": "Ann Example",
        "org": "Example Council",
        "about": "I work on digital services: forms, payments, and open data.",
    }


def test_profile_fields_with_aliases_and_first_value_wins():
    command = command_of("profile\nfull name: Ann E.\ncompany: Acme\nbio: hi\nname: Other")
    assert dict(command.fields) == {"name": "Ann E.", "org": "Acme", "about": "hi"}


def test_fields_are_capped():
    command = command_of("join\nabout: " + "x" * 2000)
    assert len(command.fields["about"]) == MAX_VALUE_CHARS


def test_other_commands_have_no_fields():
    assert dict(command_of("met\nname: Ann").fields) == {}


def test_missed_reason_is_capped():
    command = command_of("missed - " + "because " * 200)
    assert len(command.argument) == MAX_VALUE_CHARS


def test_every_command_name_is_reachable():
    bodies = {
        "join": "join",
        "confirm": "confirm abc123def456",
        "leave": "leave",
        "pause": "pause",
        "resume": "resume",
        "frequency": "frequency 2",
        "met": "met",
        "missed": "missed",
        "profile": "profile",
        "status": "status",
        "help": "help",
        "my_data": "my data",
        "forget_me": "forget me",
        "meet_again": "meet again",
        "not_again": "don't meet again",
        "never_pair": "never pair me with Sam",
        "pair_again": "pair me with Sam again",
        "rematch": "rematch",
    }
    assert set(bodies) == set(COMMAND_NAMES)
    for name, body in bodies.items():
        assert command_of(body).name == name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=100))
def test_read_command_never_raises(body, subject):
    parsed = parse_message(
        f"From: a@example.org\nSubject: {subject.splitlines()[0] if subject.splitlines() else ''}"
        f"\n\n{body}".encode("utf-8", "surrogatepass")
    )
    command = read_command(parsed)
    assert command is None or command.name in COMMAND_NAMES


# --- pause ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("", None),
        ("indefinitely", None),
        ("for a while", None),
        ("2 months", date(2027, 1, 21)),
        ("for 2 months", date(2027, 1, 21)),
        ("two months", date(2027, 1, 21)),
        ("a month", date(2026, 12, 21)),
        ("next month", date(2026, 12, 21)),
        ("3 weeks", date(2026, 12, 12)),
        ("10 days", date(2026, 12, 1)),
        ("1 year", date(2027, 11, 21)),
        ("until 2027-03-01", date(2027, 3, 1)),
        ("2027-03-01", date(2027, 3, 1)),
        ("until 1 March", date(2027, 3, 1)),
        ("until 1st March", date(2027, 3, 1)),
        ("until the 1st of March", date(2027, 3, 1)),
        ("until March 1", date(2027, 3, 1)),
        ("until March 1, 2028", date(2028, 3, 1)),
        ("until 25 December", date(2026, 12, 25)),
        ("till January", date(2027, 1, 1)),
        ("until 1 May please", date(2027, 5, 1)),
        ("for 2 months please - it's budget season", date(2027, 1, 21)),
        ("until 2027-04-01 (back from leave)", date(2027, 4, 1)),
        ("2 weeks, thanks", date(2026, 12, 5)),
    ],
)
def test_parse_pause(argument, expected):
    assert parse_pause(argument, TODAY) == expected


def test_pause_from_the_end_of_a_month_stays_in_the_shorter_month():
    assert parse_pause("1 month", date(2027, 1, 31)) == date(2027, 2, 28)


@pytest.mark.parametrize(
    ("argument", "message_part"),
    [
        ("tomorrowish", "cannot read the pause"),
        ("until 01/03/2027", "could be read two ways"),
        ("until 2020-01-01", "must end after today"),
        ("0 days", "must end after today"),
        ("until 31 February", "not a real date"),
        ("until 2027-13-01", "not a real date"),
        ("50 years", "at most"),
        ("9999 months", "at most"),
        ("until Smarch 3", "cannot read the pause"),
    ],
)
def test_parse_pause_rejects_with_a_clear_message(argument, message_part):
    with pytest.raises(ValueError, match=message_part):
        parse_pause(argument, TODAY)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_pause_returns_a_future_date_or_none_or_value_error(argument):
    try:
        result = parse_pause(argument, TODAY)
    except ValueError:
        return
    assert result is None or result > TODAY


# --- frequency ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("1", 1),
        ("2", 2),
        ("3", 3),
        (" 2 ", 2),
        ("two", 2),
        ("2 months", 2),
        ("every 3 months", 3),
        ("monthly", 1),
        ("every other month", 2),
        ("quarterly", 3),
    ],
)
def test_parse_frequency(argument, expected):
    assert parse_frequency(argument) == expected


@pytest.mark.parametrize("argument", ["0", "4", "12", "", "often", "-1"])
def test_parse_frequency_rejects(argument):
    with pytest.raises(ValueError, match="1, 2 or 3"):
        parse_frequency(argument)


def test_rematch_is_asked_in_plain_words():
    for body in ("new partner please", "Can I be matched with someone else?", "rematch please"):
        assert command_of(body).name == "rematch", body
