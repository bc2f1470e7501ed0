"""Bounce reading against the corpus of real-style reports in tests/data/bounces (one file per
MTA or provider and case; manifest.json holds the expected addresses and permanence, or
"bounce": false for a message that only looks like one), the held-out corpus in
tests/data/bounces-heldout (same layout, written independently of the detectors), and the
detector interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inbox.bounces import DETECTORS, Finding, Mail, bounce_signals, read_bounce
from inbox.classify import Kind, classify
from inbox.parse import parse_message

BOUNCES = Path(__file__).parent / "data" / "bounces"
HELDOUT = Path(__file__).parent / "data" / "bounces-heldout"
CORPORA: dict[Path, dict[str, dict]] = {
    folder: json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for folder in (BOUNCES, HELDOUT)
}
MANIFEST = CORPORA[BOUNCES]
OWN = ["coffee@unmentoring.example.org"]


def classify_file(name: str, folder: Path = BOUNCES):
    raw = (folder / name).read_bytes()
    return classify(raw, parse_message(raw), own_addresses=OWN)


def mail_of(raw: bytes) -> Mail:
    parsed = parse_message(raw)
    return Mail.of(raw, parsed, tuple(bounce_signals(parsed)))


@pytest.mark.parametrize("folder", CORPORA, ids=lambda folder: folder.name)
def test_every_file_has_an_expectation_and_every_expectation_a_file(folder):
    assert {p.name for p in folder.glob("*.eml")} == set(CORPORA[folder])


@pytest.mark.parametrize("folder", CORPORA, ids=lambda folder: folder.name)
def test_the_corpus_covers_many_formats(folder):
    bounces = [name for name, expected in CORPORA[folder].items() if expected.get("bounce", True)]
    assert len(bounces) >= 150
    assert len({name.split("-")[0] for name in bounces}) >= 40
    assert len(CORPORA[folder]) - len(bounces) >= 5  # look-alikes that are not bounces


@pytest.mark.parametrize(
    ("folder", "name"),
    [(folder, name) for folder, manifest in CORPORA.items() for name in sorted(manifest)],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_corpus_message(folder, name):
    expected = CORPORA[folder][name]
    result = classify_file(name, folder)
    if expected.get("bounce") is False:
        assert result.kind is not Kind.BOUNCE, result.reason
        return
    assert result.kind is Kind.BOUNCE, result.reason
    assert (result.bounced_addresses, result.permanent) == (expected["bounced"], expected["permanent"]), (
        result.reason
    )


def test_a_delay_warning_is_never_permanent():
    warnings = [n for n in MANIFEST if any(w in n for w in ("greylisted", "transient", "undetermined"))]
    assert len(warnings) >= 10
    for name in warnings:
        result = classify_file(name)
        assert result.kind is Kind.BOUNCE and not result.permanent, name


def test_a_report_naming_no_readable_address_is_a_bounce_that_scores_nobody():
    for name in ("mailer-daemon-no-address-in-report.eml", "kddi-masked-address.eml"):
        result = classify_file(name)
        assert (result.kind, result.bounced_addresses, result.permanent) == (Kind.BOUNCE, [], False)


def test_the_partner_named_in_the_returned_original_is_never_taken_for_the_failed_address():
    for name, expected in MANIFEST.items():
        if expected.get("bounce", True):
            assert "sam.patel@partner.example.com" not in classify_file(name).bounced_addresses, name


def test_each_detector_ignores_a_persons_message():
    raw = (
        b"From: Ann <ann@example.org>\nTo: coffee@unmentoring.example.org\nSubject: Hi\n\n"
        b"met, with bob@example.net\n"
    )
    mail = mail_of(raw)
    for name, detector in DETECTORS:
        assert detector(mail) is None, name


def test_the_first_detector_that_recognises_a_message_answers_and_a_failing_one_is_skipped():
    mail = mail_of((BOUNCES / "dma-user-unknown.eml").read_bytes())

    def broken(_mail: Mail) -> Finding | None:
        raise ValueError("a detector's bug")

    def first(_mail: Mail) -> Finding | None:
        return Finding(permanent=frozenset({"first@example.net"}))

    name, finding = read_bounce(mail, (("broken", broken), ("first", first), *DETECTORS))
    assert (name, finding.permanent) == ("first", frozenset({"first@example.net"}))
    assert read_bounce(mail, (("broken", broken),)) is None


def test_a_dsn_that_reports_no_failure_stops_the_search():
    raw = (Path(__file__).parent / "data" / "mail" / "dsn-relayed-success.eml").read_bytes()
    name, finding = read_bounce(mail_of(raw))
    assert (name, finding.addresses) == ("RFC 3464 DSN", frozenset())


def test_an_ses_notification_not_from_amazon_is_not_read_as_one():
    raw = (BOUNCES / "amazonses-notification-permanent.eml").read_bytes()
    forged = raw.replace(b"X-Amz-Sns-Message-Id", b"X-Other").replace(
        b"no-reply@sns.amazonaws.com", b"a@b.example"
    )
    assert classify(forged, parse_message(forged), own_addresses=OWN).kind is not Kind.BOUNCE
