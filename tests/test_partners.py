"""Wishes about partners by email: "meet again" and "never pair me with", applied through the
processor to a real store (tests/test_apply.py's harness); the answers are read as notices."""

from __future__ import annotations

from inbox.commands.registry import COMMANDS
from matcher.model import Group, Member
from tests.test_apply import Harness, add_round, add_sent, only


def _grouped(box: Harness) -> tuple[Member, Member, Member, Member]:
    ann = box.join("ann@example.org", name="Ann Lee")
    bob = box.join("bob@example.org", name="Bob Stone")
    bea = box.join("bea@example.org", name="Bea Stone")
    dan = box.join("dan@example.org", name="Dan Moss")
    add_round(box, "2026-01", 24312, [Group("2026-01", 1, [ann.id, bob.id], host=ann.id)], closed=True)
    add_round(box, "2026-02", 24313, [Group("2026-02", 1, [ann.id, bea.id], host=bea.id)])
    return ann, bob, bea, dan


def test_meet_again_in_reply_to_a_followup_names_that_group_and_tells_only_the_sender(box: Harness) -> None:
    ann, bob, *_ = _grouped(box)
    followup = add_sent(box, f"followup:2026-01:1:{ann.id}", ["ann@example.org"], group_id="2026-01:1")

    result = box.say(
        "ann@example.org", "We'd love to keep talking!", "Re: Did you meet?", in_reply_to=followup
    )

    answer = only(result, "meet_again")
    assert answer.to == ["ann@example.org"]
    assert answer.values == {"name": "Ann Lee", "partners": ["Bob Stone"], "wanted": True}
    assert box.member("ann@example.org").meet_again == ["2026-01:1"]
    assert box.member("bob@example.org").meet_again == []


def test_meet_again_without_threading_is_about_the_latest_group_and_is_taken_back(box: Harness) -> None:
    _grouped(box)
    only(box.say("ann@example.org", "Can we meet again?"), "meet_again")
    assert box.member("ann@example.org").meet_again == ["2026-02:1"]

    answer = only(box.say("ann@example.org", "Actually, don't meet again"), "meet_again")
    assert answer.values["wanted"] is False and answer.values["partners"] == ["Bea Stone"]
    assert box.member("ann@example.org").meet_again == []


def test_never_pair_by_name_needs_proof_of_mailbox(box: Harness) -> None:
    ann, bob, *_ = _grouped(box)

    help_mail = only(box.say("ann@example.org", "never pair me with Bob"), "help")
    assert help_mail.to == ["ann@example.org"] and "reply to this email" in help_mail.values["reason"]
    assert box.member("ann@example.org").never_with == []

    mine = add_sent(box, f"followup:2026-01:1:{ann.id}", ["ann@example.org"], group_id="2026-01:1")
    answer = only(
        box.say("ann@example.org", "Never pair me with Bob again, please", in_reply_to=mine), "never_pair"
    )
    assert answer.to == ["ann@example.org"]
    assert answer.values == {"name": "Ann Lee", "who": "Bob Stone", "removed": False}
    assert box.member("ann@example.org").never_with == [bob.id]
    assert box.member("bob@example.org").never_with == []


def test_an_ambiguous_name_lists_partners_by_name_only(box: Harness) -> None:
    ann, *_ = _grouped(box)
    mine = add_sent(box, f"followup:2026-02:1:{ann.id}", ["ann@example.org"], group_id="2026-02:1")

    reason = only(box.say("ann@example.org", "never pair me with Stone", in_reply_to=mine), "help").values[
        "reason"
    ]

    assert "Bea Stone or Bob Stone" in reason and "@" not in reason
    stranger = only(box.say("ann@example.org", "never pair me with Dan", in_reply_to=mine), "help")
    assert "could not find 'Dan'" in stranger.values["reason"] and "Dan Moss" not in stranger.values["reason"]
    assert box.member("ann@example.org").never_with == []


def test_never_pair_by_address_reveals_nothing_and_is_undone_by_name_or_address(box: Harness) -> None:
    ann, _, _, dan = _grouped(box)
    mine = add_sent(box, f"followup:2026-02:1:{ann.id}", ["ann@example.org"], group_id="2026-02:1")

    member = only(
        box.say("ann@example.org", "Please don't pair me with Dan@Example.org", in_reply_to=mine),
        "never_pair",
    )
    stranger = only(
        box.say("ann@example.org", "never pair me with zed@example.net", in_reply_to=mine), "never_pair"
    )

    assert member.values["who"] == "dan@example.org" and stranger.values["who"] == "zed@example.net"
    assert box.member("ann@example.org").never_with == [dan.id, "zed@example.net"]
    undo = only(box.say("ann@example.org", "You can pair me with Dan again", in_reply_to=mine), "never_pair")
    assert undo.values == {"name": "Ann Lee", "who": "Dan Moss", "removed": True}
    only(box.say("ann@example.org", "forget never-pair zed@example.net", in_reply_to=mine), "never_pair")
    assert box.member("ann@example.org").never_with == []


def test_stop_pairing_me_with_is_not_leave(box: Harness) -> None:
    ann, *_ = _grouped(box)
    mine = add_sent(box, f"followup:2026-02:1:{ann.id}", ["ann@example.org"], group_id="2026-02:1")
    only(box.say("ann@example.org", "Stop pairing me with Bea", in_reply_to=mine), "never_pair")
    assert box.member("ann@example.org").status == "active"


def test_the_wishes_are_in_the_help_email() -> None:
    usages = [line["usage"] for line in COMMANDS.help_lines()]
    assert "meet again" in usages and "never pair me with NAME (or their email address)" in usages
