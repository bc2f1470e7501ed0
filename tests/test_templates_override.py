"""An organiser's own wording: `[programme] templates_dir` overrides shipped templates by file name.

Seen from the outside: the mail a member receives through the product's sandbox SMTP server, and what
`check-config` says (and its exit code) about a broken override.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mailer.render import SHIPPED_TEMPLATES
from tests.helpers.cli_env import CliEnv, describe, messages_of_kind, write_config
from tests.servers import free_port
from unmentoring.sandbox import SandboxServer

SHIPPED = Path(str(SHIPPED_TEMPLATES))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    """A programme whose config names a 'wording' folder beside it; the current folder is the config's,
    as when an organiser runs check-config where the config lives."""
    env = CliEnv(tmp_path, sandbox_port=free_port())
    (tmp_path / "wording").mkdir()
    write_config(
        env.config_path,
        data_dir=env.data_dir,
        sandbox_port=env.sandbox_port,
        extra='templates_dir = "wording"',
    )
    monkeypatch.chdir(tmp_path)
    return env


def override(env: CliEnv, name: str, old: str, new: str) -> None:
    """Change one phrase of the organiser's copy of a template (copied from the shipped one first)."""
    own = env.root / "wording" / name
    text = (own if own.exists() else SHIPPED / name).read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {name}: the test needs updating"
    own.write_text(text.replace(old, new), encoding="utf-8")


def write(env: CliEnv, name: str, text: str) -> None:
    (env.root / "wording" / name).write_text(text, encoding="utf-8")


def test_an_override_changes_the_mail_a_member_receives(env: CliEnv, sandbox: SandboxServer) -> None:
    override(env, "welcome.txt", "Welcome to {{ programme.name }}", "Croeso to {{ programme.name }}")
    override(env, "welcome.txt", "You're in.", "You're in: the council's own words.")
    override(env, "welcome.html", "You're in.", "You're in: the council's own words.")

    env.ok("members", "add", "alice@example.org", "--name", "Alice")
    env.ok("tick")  # one pass of the service: the queued welcome goes out through the sandbox

    (welcome,) = messages_of_kind(env.mailbox("alice@example.org"), "welcome")
    assert welcome["Subject"] == "Croeso to UnMentoring"
    text = welcome.get_body(("plain",)).get_content()
    html = welcome.get_body(("html",)).get_content()
    assert "You're in: the council's own words." in " ".join(text.split())
    assert "You're in: the council's own words." in " ".join(html.split())
    # what was not overridden falls back to the shipped wording: the base's footer
    assert 'Reply "leave"' in text and "leave" in html


def test_check_config_names_a_broken_override_by_file_and_line(env: CliEnv) -> None:
    write(env, "intro.txt", '{% extends "_base.txt" %}\n{% block subject %}Meet{% endblock %}\n{{ name }\n')
    override(env, "welcome.txt", "Welcome to {{ programme.name }}", "Welcome, {{ nickname }}")

    result = env.invoke("check-config")

    assert result.exit_code == 2, describe(result)
    assert "wording/intro.txt line 3: unexpected '}'" in result.stderr, describe(result)
    assert "wording/welcome.txt line 2: missing value: 'nickname' is undefined" in result.stderr
    assert "Traceback" not in result.output
    json.loads(result.stdout)  # the configuration itself still prints, as data


def test_a_broken_base_is_reported_once_not_once_per_kind(env: CliEnv) -> None:
    override(env, "_base.txt", "{% block body %}{% endblock %}", "{% block body %}{% endblock %}{% if %}")

    result = env.invoke("check-config")

    assert result.exit_code == 2, describe(result)
    lines = [line for line in result.stderr.splitlines() if "_base.txt" in line]
    assert len(lines) == 1 and lines[0].startswith("wording/_base.txt line 1: "), describe(result)


def test_check_config_accepts_good_overrides_and_warns_of_a_misspelt_or_half_override(env: CliEnv) -> None:
    override(env, "goodbye.txt", "{% block body %}", "{% block body %}\nThank you for taking part.")
    override(env, "goodbye.html", "{% block body %}", "{% block body %}\n<p>Thank you for taking part.</p>")
    override(env, "welcome.txt", "You're in.", "You are in.")
    write(env, "welcom.html", "misspelt: never used")

    result = env.invoke("check-config")

    assert result.exit_code == 0, describe(result)
    assert "warning: wording/welcom.html replaces no shipped template" in result.stderr
    assert "warning: welcome.txt and welcome.html are the plain and HTML parts of one mail" in result.stderr
    assert "goodbye.html" not in result.stderr.split("yours:")[0]
    assert "yours: goodbye.html, goodbye.txt, welcome.txt" in result.stderr
    assert json.loads(result.stdout)["programme"]["templates_dir"] == "wording"


def test_a_templates_dir_that_does_not_exist_is_a_configuration_error(env: CliEnv) -> None:
    shutil.rmtree(env.root / "wording")

    result = env.invoke("check-config")

    assert result.exit_code == 2, describe(result)
    assert f"{env.config_path}: programme.templates_dir: expected a folder" in result.stderr


def test_tick_refuses_to_start_with_a_broken_override_and_sends_nothing(
    env: CliEnv, sandbox: SandboxServer
) -> None:
    env.ok("members", "add", "alice@example.org", "--name", "Alice")
    write(env, "intro.html", "{% if %}\n")

    result = env.invoke("tick")

    assert result.exit_code == 2, describe(result)
    assert "wording/intro.html line 1: " in result.stderr and "Traceback" not in result.output
    assert messages_of_kind(env.mailbox("alice@example.org"), "welcome") == []
