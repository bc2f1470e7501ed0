"""Answers read in context, disputes and messages we cannot read, through the processor on a real
store: the answer corpus (tests/data/answers) replayed as replies to a follow-up we sent, the strict
reading outside that thread, the organisers' copy of what we could not read, and `explain`."""

from __future__ import annotations

import email
import json
from datetime import date, timedelta
from email import policy
from email.utils import parseaddr
from pathlib import Path

import pytest

from inbox.explain import explain
from matcher import members as ops
from matcher.model import Group, Member, OutboxEntry, OutboxStatus, Result, Round, RoundStep, UnreadMessage
from matcher.rounds import REASON_MAX_CHARS, clean_reason, close_round
from tests.helpers.cli_env import CliEnv, describe
from tests.servers import free_port
from tests.test_apply import PROGRAMME, START, Harness, add_sent, make_harness, make_message, only

CORPUS = Path(__file__).parent / "data" / "answers"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
ROUND = "2026-01"
ORDINAL = 2026 * 12
MEETING_WEEK = date(2026, 1, 5)


def add_round(box: Harness, members: list[Member], *, followups_sent: bool = True, number: int = 1) -> Group:
    """Round 2026-01 with one group of ``members``, introduced (and followed up, unless told not)."""
    steps = [RoundStep.INTROS] + ([RoundStep.FOLLOWUPS] if followups_sent else [])
    group = Group(ROUND, number, [m.id for m in members], host=members[0].id)
    intro = OutboxEntry(
        key=f"intro:{group.key}",
        kind="intro",
        envelope_from=PROGRAMME,
        recipients=[m.address for m in members],
        message_id=f"intro-{number}@u",
        status=OutboxStatus.SENT,
        round_id=ROUND,
        group_id=group.key,
    )
    with box.store.transaction():
        if box.store.get(Round, ROUND) is None:
            box.store.put(
                Round(
                    id=ROUND,
                    ordinal=ORDINAL,
                    starts_on=MEETING_WEEK,
                    meeting_week_start=MEETING_WEEK,
                    meeting_week_end=MEETING_WEEK + timedelta(days=4),
                    followup_on=MEETING_WEEK + timedelta(days=7),
                    seed=7,
                    steps_done=steps,
                )
            )
        box.store.put(group)
        box.store.put(intro)
    return group


def member(box: Harness, address: str, name: str = "") -> Member:
    with box.store.transaction():
        return ops.activate(box.store, ops.start_joining(box.store, address, {"name": name}, START), START)


def followup_to(box: Harness, someone: Member, group: Group, kind: str = "followup") -> str:
    """The follow-up (or reminder) we sent ``someone`` about ``group``, as the outbox records it."""
    return add_sent(box, f"{kind}:{group.key}:{someone.id}", [someone.address], kind, group_id=group.key)


def as_reply_to(raw: bytes, message_id: str) -> bytes:
    """A corpus message, threaded to one of our emails instead of the one it was written against."""
    message = email.message_from_bytes(raw, policy=policy.compat32)
    del message["In-Reply-To"]
    del message["References"]
    message["In-Reply-To"] = f"<{message_id}>"
    message["References"] = f"<intro-1@u> <{message_id}>"
    return message.as_bytes()


# -- the corpus, as replies to a real follow-up ---------------------------------------------------


def test_the_corpus_holds_at_least_80_clear_answers():
    assert sum(1 for e in EXPECTED.values() if e["outcome"] != "unclear") >= 80


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_corpus_reply_to_a_followup_records_its_answer_for_that_group(tmp_path: Path, name: str) -> None:
    box = make_harness(tmp_path)
    raw = (CORPUS / name).read_bytes()
    sender = parseaddr(email.message_from_bytes(raw)["From"])[1].lower()
    ann, partner = member(box, sender), member(box, "partner@example.org")
    group = add_round(box, [ann, partner])
    expected = EXPECTED[name]

    result = box.send(as_reply_to(raw, followup_to(box, ann, group)))

    outcome = box.store.get(Group, group.key).outcomes.get(ann.id)
    if expected["outcome"] == "unclear":
        assert outcome is None, result.summary
        answer = only(result, "help")
        assert answer.values["suggestion"] == "met / missed" and answer.values["quoted"]
        assert answer.values["reason"] and answer.to == [sender]
        kept = box.store.get(UnreadMessage, next(iter(k.key for k in box.store.all(UnreadMessage))))
        assert (kept.sender, kept.group, kept.member_id) == (sender, group.key, ann.id)
        assert kept.text and kept.text.split()[0] in expected["wrote"]
    else:
        assert result.notices == [], result.summary
        assert outcome is not None, result.summary
        assert (outcome.result.value, outcome.reason) == (
            expected["outcome"],
            clean_reason(expected["comment"]),
        )
        assert box.store.all(UnreadMessage) == []


# -- strict outside the thread --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["yes", "Yes we did", "sadly not, she was ill", "we met on Tuesday"])
def test_an_answer_outside_the_thread_is_not_an_outcome(box: Harness, text: str) -> None:
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    answer = only(box.say("ann@example.org", text), "help")
    assert box.store.get(Group, group.key).outcomes == {}
    assert answer.values["reason"] == "it does not start with one of our commands"
    assert answer.values["quoted"] == text


def test_a_reply_to_a_followup_sent_to_someone_else_is_not_their_answer(box: Harness) -> None:
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    bobs_followup = followup_to(box, bob, group)
    only(box.say("ann@example.org", "yes we did", in_reply_to=bobs_followup), "help")
    assert box.store.get(Group, group.key).outcomes == {}


def test_the_intro_thread_asks_did_you_meet_only_once_the_followups_are_out(box: Harness) -> None:
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob], followups_sent=False)
    only(box.say("ann@example.org", "Yes, Tuesday works", in_reply_to="intro-1@u"), "help")
    assert box.store.get(Group, group.key).outcomes == {}
    with box.store.transaction():
        stored = box.store.get(Round, ROUND)
        stored.steps_done = [*stored.steps_done, RoundStep.FOLLOWUPS]
        box.store.put(stored)
    assert box.say("ann@example.org", "We met on Tuesday, great chat", in_reply_to="intro-1@u").notices == []
    outcome = box.store.get(Group, group.key).outcomes[ann.id]
    assert (outcome.result, outcome.reason) == (Result.MET, "We met on Tuesday, great chat")


def test_a_reminder_is_answered_like_a_followup_and_names_its_group(box: Harness) -> None:
    ann, bob, cat = (member(box, f"{n}@example.org") for n in ("ann", "bob", "cat"))
    first = add_round(box, [ann, bob])
    second = add_round(box, [cat, ann], number=2)  # a triple's worth of threads: the right one counts
    reminder = followup_to(box, ann, first, "reminder")
    assert box.say("ann@example.org", "Nope, not this time", in_reply_to=reminder).notices == []
    assert box.store.get(Group, first.key).outcomes[ann.id].result is Result.MISSED
    assert box.store.get(Group, second.key).outcomes == {}


def test_an_answer_for_a_closed_round_is_refused_with_the_reason(box: Harness) -> None:
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    followup = followup_to(box, ann, group)
    with box.store.transaction():
        close_round(box.store, ROUND, START)
    answer = only(box.say("ann@example.org", "yes", in_reply_to=followup), "help")
    assert "closed" in answer.values["reason"]


# -- disputes -------------------------------------------------------------------------------------


def test_a_met_and_a_missed_make_the_group_disputed_and_both_stand(box: Harness) -> None:
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    box.say("ann@example.org", "Yes we did!", in_reply_to=followup_to(box, ann, group))
    box.say("bob@example.org", "Sadly not - she never replied", in_reply_to=followup_to(box, bob, group))
    stored = box.store.get(Group, group.key)
    assert stored.result() is Result.DISPUTED and not stored.met
    assert stored.outcomes[ann.id].result is Result.MET
    assert (stored.outcomes[bob.id].result, stored.outcomes[bob.id].reason) == (
        Result.MISSED,
        "she never replied",
    )
    with box.store.transaction():
        report = close_round(box.store, ROUND, START)
    assert (report.met, report.missed, report.disputed, report.no_reply) == (0, 0, 1, 0)
    assert box.member("ann@example.org").silent_rounds == 0 == box.member("bob@example.org").silent_rounds


# -- what we cannot read --------------------------------------------------------------------------


def test_an_unclear_answer_is_answered_with_the_line_and_kept_for_the_organisers(box: Harness) -> None:
    ann, bob = member(box, "ann@example.org", "Ann Lee"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    body = "We're meeting next week instead\n\nAnn\n\nOn Mon, Coffee wrote:\n> Did you meet Bob?"
    result = box.say("ann@example.org", body, in_reply_to=followup_to(box, ann, group))
    answer = only(result, "help")
    assert answer.values["quoted"] == "We're meeting next week instead"
    assert answer.values["suggestion"] == "met / missed"
    assert "not met yet" in answer.values["reason"]
    (kept,) = box.store.all(UnreadMessage)
    assert (kept.name, kept.text, kept.group) == (
        "Ann Lee",
        "We're meeting next week instead\n\nAnn",
        group.key,
    )
    assert box.store.get(Group, group.key).outcomes == {}


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("joni", "join"), ("Hi, how do I unsubscribe?", "leave"), ("pase for 2 months", "pause"), ("hello", "")],
)
def test_a_message_without_a_command_gets_the_closest_command(
    box: Harness, text: str, suggestion: str
) -> None:
    answer = only(box.say("stranger@example.org", text), "help")
    assert (answer.values["quoted"], answer.values["suggestion"]) == (text, suggestion)
    assert answer.values["reason"] == "it does not start with one of our commands"
    (kept,) = box.store.all(UnreadMessage)
    assert (kept.sender, kept.member_id, kept.text) == ("stranger@example.org", "", text)


def test_long_unread_text_is_cut_and_marked(box: Harness) -> None:
    only(box.say("ann@example.org", "\n".join(f"line {i}" for i in range(40))), "help")
    (kept,) = box.store.all(UnreadMessage)
    assert kept.text.splitlines()[-1] == "..." and len(kept.text.splitlines()) == 13
    only(box.say("bob@example.org", "word " * 1000), "help")
    longest = max(box.store.all(UnreadMessage), key=lambda u: len(u.text))
    assert len(longest.text) <= 1000 and longest.text.endswith("...")


def test_forward_unread_sends_it_to_the_organisers_at_once_with_the_sender_to_reply_to(
    tmp_path: Path,
) -> None:
    box = make_harness(tmp_path, forward_unread=("helpdesk@example.org",), replies_per_sender_per_day=2)
    result = box.say("Ann Lee <ann@example.org>", "What is this about?", "Question")
    assert [n.kind for n in result.notices] == ["help", "unread"]
    forward = result.notices[1]
    assert forward.to == ["helpdesk@example.org"] and forward.values["address"] == "ann@example.org"
    assert not forward.auto_reply
    assert {k: forward.values[k] for k in ("name", "address", "subject", "text", "group")} == {
        "name": "Ann Lee",
        "address": "ann@example.org",
        "subject": "Question",
        "text": "What is this about?",
        "group": "",
    }
    # A flood from one sender reaches the organisers only as often as we answer them in a day.
    kinds = [[n.kind for n in box.say("ann@example.org", f"spam {i}").notices] for i in range(3)]
    assert kinds == [["help", "unread"], [], []]
    assert len(box.store.all(UnreadMessage)) == 4


def test_forget_me_erases_what_we_could_not_read(box: Harness) -> None:
    ann = member(box, "ann@example.org")
    box.say("ann@example.org", "what is this")
    assert ops.member_data(box.store, ann)["messages_we_could_not_read"][0]["text"] == "what is this"
    with box.store.transaction():
        ops.erase(box.store, box.member("ann@example.org"), START)
    assert box.store.all(UnreadMessage) == []


def test_an_unread_reason_is_kept_to_the_reason_limit(box: Harness) -> None:
    assert REASON_MAX_CHARS == 500  # the same cap as a missed reason read from an answer
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    box.say("ann@example.org", "no - " + "x" * 800, in_reply_to=followup_to(box, ann, group))
    assert box.store.get(Group, group.key).outcomes[ann.id].reason == "x" * 500


# -- explain, in context --------------------------------------------------------------------------


def test_explain_says_which_round_group_and_answer_a_reply_gives(box: Harness) -> None:
    ann, bob = member(box, "ann@example.org"), member(box, "bob@example.org")
    group = add_round(box, [ann, bob])
    followup = followup_to(box, ann, group)
    raw = make_message("ann@example.org", "Sadly not, she was ill", in_reply_to=followup)
    before = box.store.path.read_bytes()

    result = explain(raw, own_addresses=[PROGRAMME], store=box.store)

    assert result["kind"] == "not_command" and result["command"] is None
    assert result["context"] == {
        "member": True,
        "round": ROUND,
        "group": 1,
        "asked": "followup",
        "read_as": "answer",
        "answer": "missed",
        "comment": "she was ill",
        "doubt": "",
    }
    stray = explain(make_message("ann@example.org", "yes"), own_addresses=[PROGRAMME], store=box.store)
    assert stray["context"]["read_as"] == "not understood" and stray["context"]["group"] is None
    met = explain(make_message("ann@example.org", "met"), own_addresses=[PROGRAMME], store=box.store)
    assert (met["context"]["read_as"], met["context"]["round"], met["context"]["group"]) == (
        "command",
        ROUND,
        1,
    )
    assert box.store.path.read_bytes() == before and box.store.get(Group, group.key).outcomes == {}


def test_explain_in_bulk_prints_one_object_per_line_each_with_its_file(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "programme", sandbox_port=free_port())
    folder = tmp_path / "mail"
    (folder / "sub").mkdir(parents=True)
    names = sorted(EXPECTED)[:3]
    for i, name in enumerate(names):
        (folder / ("sub" if i else "") / f"{i}.eml").write_bytes((CORPUS / name).read_bytes())
    (folder / ".hidden").write_bytes(b"x")
    single = folder / "0.eml"

    bulk = env.invoke("explain", str(folder), str(single), str(tmp_path / "missing.eml"))

    assert bulk.exit_code == 1, describe(bulk)
    lines = bulk.stdout.splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["file"] for o in objects] == [
        str(folder / "0.eml"),
        str(folder / "sub" / "1.eml"),
        str(folder / "sub" / "2.eml"),
        str(single),
        str(tmp_path / "missing.eml"),
    ]
    assert all(o["kind"] == "not_command" or o["kind"] == "command" for o in objects[:4])
    assert "cannot be read" in objects[4]["error"]
    assert "context" not in objects[0], "no database: nothing to read it against"
    one = env.ok("explain", str(single)).stdout
    assert json.loads(one) == objects[0] and one.count("\n") > 1  # one object, indented as before
    assert not env.data_dir.exists(), "explain must change nothing"
