"""Templates: each kind renders, says how to pause and leave, escapes HTML, names what is amiss."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import markupsafe
import pytest

from mailer.render import KINDS, SHIPPED_TEMPLATES, Renderer, RenderError
from mailer.settings import MailSettings
from mailer.template_check import SAMPLE_MEMBERS, SAMPLE_VALUES
from mailkit.servers import SmtpServer

ALICE, BOB = SAMPLE_MEMBERS
CARA = {"name": "Cara Cole", "org": "Eastbury Police", "about": ""}
SHIPPED = Path(str(SHIPPED_TEMPLATES))


def make_settings(templates_dir: Path | None = None) -> MailSettings:
    return MailSettings(
        programme_name="Coffee Trials",
        programme_address="coffee@example.org",
        organisers=["boss@example.org"],
        list_id="coffee-trials.example.org",
        smtp=SmtpServer(per_minute=0, per_day=0, host="127.0.0.1", port=2525, security="none"),
        templates_dir=templates_dir,
    )


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(make_settings())


def test_every_kind_has_sample_values_and_both_templates() -> None:
    assert set(SAMPLE_VALUES) == set(KINDS)
    for kind in KINDS:
        assert (SHIPPED / f"{kind}.txt").is_file(), kind
        assert (SHIPPED / f"{kind}.html").is_file(), kind


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_a_subject_and_says_how_to_pause_and_leave(renderer: Renderer, kind: str) -> None:
    rendered = renderer.render(kind, SAMPLE_VALUES[kind])
    assert rendered.subject and "\n" not in rendered.subject
    for body in (rendered.text, rendered.html):
        assert "pause" in body.lower(), kind
        assert "leave" in body.lower(), kind
        assert "Coffee Trials" in body
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert f"<title>{markupsafe.escape(rendered.subject)}</title>" in rendered.html


@pytest.mark.parametrize("kind", sorted(k for k, spec in KINDS.items() if spec.required))
def test_a_missing_value_names_the_template_and_the_value(renderer: Renderer, kind: str) -> None:
    values = dict(SAMPLE_VALUES[kind])
    missing = KINDS[kind].required[-1]
    del values[missing]
    with pytest.raises(RenderError) as error:
        renderer.render(kind, values)
    assert repr(kind) in str(error.value) and repr(missing) in str(error.value)


def test_an_unknown_kind_is_a_clear_error(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="unknown notice kind 'welcom'"):
        renderer.render("welcom", {})


def test_an_intro_member_without_about_is_named(renderer: Renderer) -> None:
    values = dict(SAMPLE_VALUES["intro"], members=[ALICE, {"name": "Bob", "org": "X"}])
    with pytest.raises(RenderError, match=r"members\[1\]\.about"):
        renderer.render("intro", values)


def test_strict_undefined_names_the_template(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(SHIPPED, templates)
    text = (templates / "welcome.txt").read_text()
    (templates / "welcome.txt").write_text(text.replace("You're in.", "You're in, {{ nickname }}."))
    with pytest.raises(RenderError) as error:
        Renderer(make_settings(templates)).render("welcome", SAMPLE_VALUES["welcome"])
    assert "welcome.txt" in str(error.value) and "nickname" in str(error.value)


def test_html_escapes_what_members_wrote_and_text_keeps_it(renderer: Renderer) -> None:
    evil = {"name": "Mallory <i>", "org": "Evil & Co", "about": '<script>alert("x")</script>'}
    rendered = renderer.render("intro", dict(SAMPLE_VALUES["intro"], members=[ALICE, evil]))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in rendered.html
    assert "Mallory &lt;i&gt;" in rendered.html and "Evil &amp; Co" in rendered.html
    assert "Roads and &lt;b&gt;bridges&lt;/b&gt;" in rendered.html
    assert '<script>alert("x")</script>' in rendered.text


def test_pair_intro_names_everyone_host_week_theme_and_followup(renderer: Renderer) -> None:
    r = renderer.render("intro", SAMPLE_VALUES["intro"])
    assert r.subject == "Coffee Trials: meet Alice Able and Bob Baker"
    text = " ".join(r.text.split())
    for person in (ALICE, BOB):
        assert person["name"] in text and person["org"] in text
    assert "Roads and <b>bridges</b>" in text and "Digital services" in text
    assert "You two have been matched" in text
    assert "Alice Able, you're the host this time" in text and "two times" in text
    assert "Bob Baker: pick one" in text
    assert "Monday 7 December to Sunday 13 December 2026" in text
    assert "Think, Do, Share" in text and "no sales pitches" in text
    assert "On Monday 14 December 2026 we'll ask each of you whether you met" in text
    assert "Alice Able, you're the host this time" in r.html and "no sales pitches" in r.html


def test_triple_intro_speaks_to_three(renderer: Renderer) -> None:
    values = dict(SAMPLE_VALUES["intro"], members=[ALICE, BOB, CARA], host="Cara Cole")
    r = renderer.render("intro", values)
    text = " ".join(r.text.split())
    assert r.subject == "Coffee Trials: meet Alice Able, Bob Baker and Cara Cole"
    assert "You three have been matched" in text
    assert "Cara Cole, you're the host this time" in text and "Everyone else: pick one" in text
    assert "(nothing about them yet)" in text


def test_an_intro_with_nameless_members_still_reads(renderer: Renderer) -> None:
    nameless = {"name": "", "org": "", "about": ""}
    r = renderer.render("intro", dict(SAMPLE_VALUES["intro"], members=[nameless, BOB], host=""))
    assert "One of you, you're the host this time" in " ".join(r.text.split())
    assert "a fellow member" in r.text


@pytest.mark.parametrize(
    ("frequency", "every", "period"),
    [
        (1, "every month", "this month"),
        (2, "every two months", "in the next two months"),
        (3, "every three months", "in the next three months"),
    ],
)
def test_wording_follows_the_members_frequency(
    renderer: Renderer, frequency: int, every: str, period: str
) -> None:
    r = renderer.render("frequency_changed", {"name": "Alice", "frequency": frequency})
    text = " ".join(r.text.split())
    assert every in r.subject
    assert f"introduced to someone {every}, that is one conversation {period}" in text
    welcome = renderer.render("welcome", dict(SAMPLE_VALUES["welcome"], frequency=frequency))
    assert f"introduced to someone new {every}" in " ".join(welcome.text.split())


def test_paused_until_a_date_or_until_resume(renderer: Renderer) -> None:
    dated = renderer.render("paused", {"name": "Alice", "until": date(2027, 3, 1)})
    assert "until Monday 1 March 2027" in " ".join(dated.text.split())
    open_ended = renderer.render("paused", {"name": "Alice", "until": None})
    assert 'until you send "resume"' in " ".join(open_ended.text.split())


def test_confirmations_carry_the_token_and_expiry(renderer: Renderer) -> None:
    for kind in ("confirm_join", "confirm_leave", "confirm_forget"):
        r = renderer.render(kind, SAMPLE_VALUES[kind])
        token = SAMPLE_VALUES[kind]["token"]
        assert f"confirm {token}" in r.text and f"confirm {token}" in r.html
        assert "Monday 14 December 2026" in r.text


def test_help_says_what_was_not_understood(renderer: Renderer) -> None:
    r = renderer.render("help", SAMPLE_VALUES["help"])
    assert "could not act on your email: frequency must be 1, 2 or 3" in " ".join(r.text.split())
    plain = renderer.render("help", {**SAMPLE_VALUES["help"], "reason": ""})
    assert "could not act" not in plain.text and "frequency 1, 2 or 3" in plain.text


def test_my_data_says_it_in_words(renderer: Renderer) -> None:
    values = SAMPLE_VALUES["my_data"]
    member = {**values["data"]["member"], "name": "Al <x>"}
    r = renderer.render("my_data", {**values, "data": {**values["data"], "member": member}})
    words = " ".join(r.text.split())
    assert "Organisation: Highways" in words and "paused (paused until Monday 1 February 2027)" in words
    assert "with Carol, hosted by Carol. Your answer: met." in words
    assert "Never to be grouped with: Bob" in words and '"see you soon" (no command)' in words
    assert "{" not in r.text and "'" not in r.text.replace("'s", "")
    assert "Al &lt;x&gt;" in r.html


def test_summary_text_carries_the_figures_as_a_table_and_html_the_images(
    renderer: Renderer,
) -> None:
    r = renderer.render("summary", SAMPLE_VALUES["summary"])
    assert r.subject == "Coffee Trials summary: round 2026-12"
    lines = r.text.splitlines()
    assert any(line.split() == ["Members", "42"] for line in lines)
    assert any(line.split() == ["Met", "rate", "71%"] for line in lines)
    assert any(line.split() == ["2026-11", "20", "14", "4", "2", "70%"] for line in lines)
    assert any(line.split() == ["2026-12", "21", "14", "3", "3", "1", "67%"] for line in lines)
    assert "group 4: Alice Able: met; Bob Baker: missed (never heard back)" in r.text
    assert "Cara Cole, Tuesday 15 December:" in r.text
    assert "      We keep missing each other, can you help?" in lines
    assert "We keep missing each other" in r.html and "Disputed" in r.html
    assert "too busy" in r.text and "Dan" in r.text and "Eve <eve@example.org>" in r.text
    assert "  too busy: 1" in lines and '      "holiday"' in lines  # reasons by theme, verbatim examples
    assert "  - Fay <fay@example.org>: silent 2 rounds in a row. We: reminded." in lines
    assert "Schedule: the first Monday of every month, meeting week 1" in lines
    assert "Fay &lt;fay@example.org&gt;</td>" in r.html and "silent 2 rounds in a row</td>" in r.html
    assert 'src="cid:growth"' in r.html and 'src="cid:network"' in r.html
    assert "growth.png" in r.text
    assert "<td" in r.html and "2026-11" in r.html and "Eve &lt;eve@example.org&gt;" in r.html


def test_summary_accepts_empty_tables_and_a_third_image(renderer: Renderer) -> None:
    values = {
        "figures": [],
        "rounds": [],
        "reasons": [],
        "ghosts": [],
        "disabled": [],
        "images": ["growth", "network", "met_network"],
        "round_id": "2027-01",
    }
    r = renderer.render("summary", values)
    assert "round 2027-01" in r.subject
    assert r.text.count("(none)") == 3
    assert 'src="cid:met_network"' in r.html


def test_a_list_value_given_as_text_is_refused(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="'partners' as a list"):
        renderer.render("reminder", dict(SAMPLE_VALUES["reminder"], partners="Alice"))


def test_a_name_with_line_breaks_stays_on_one_line_in_the_subject(renderer: Renderer) -> None:
    values = dict(SAMPLE_VALUES["followup"], partners=["Eve\r\nBcc: x@evil.example"])
    r = renderer.render("followup", values)
    assert r.subject == "Did you meet Eve Bcc: x@evil.example?"
