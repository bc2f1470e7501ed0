"""Configuration: the sandbox defaults, a full file, and one clear error per mistake."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unmentoring.config import SECRETS, SECTIONS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]

FULL = """
[programme]
name = "Coffee Roulette"
address = "coffee@network.example.org"
organisers = ["ops@network.example.org"]
timezone = "Europe/Paris"
cadence = "last Friday"
start_time = "10:30"
meeting_week = 2
followup_day = "Tuesday"

[imap]
host = "imap.example.org"
username = "coffee"
password_env = "TEST_IMAP_SECRET"
timeout = 10

[smtp]
host = "smtp.example.org"
username = "coffee"
password_env = "TEST_SMTP_SECRET"
per_minute = 20

[limits]
bounce_threshold = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "unmentoring.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def test_no_file_means_the_sandbox() -> None:
    config = load_config(None, {})
    assert config.mode == "sandbox"
    assert config.sandbox.port == 2525
    assert config.imap is None and config.smtp is None


def test_a_full_file(tmp_path: Path) -> None:
    env = {"TEST_IMAP_SECRET": "imap-pw", "TEST_SMTP_SECRET": "smtp-pw"}
    config = load_config(write(tmp_path, FULL), env)
    assert config.mode == "production"
    assert config.programme.name == "Coffee Roulette"
    assert config.programme.domain == "network.example.org"
    assert config.programme.zone.key == "Europe/Paris"
    assert config.imap.password == "imap-pw" and config.imap.timeout == 10.0
    assert config.smtp.per_minute == 20 and config.smtp.password == "smtp-pw"
    assert config.limits.bounce_threshold == 5
    assert config.data_dir == (tmp_path / "data").resolve()


def test_secrets_are_masked_and_never_in_the_repr(tmp_path: Path) -> None:
    env = {"TEST_IMAP_SECRET": "imap-pw", "TEST_SMTP_SECRET": "smtp-pw"}
    config = load_config(write(tmp_path, FULL), env)
    shown = json.dumps(config.masked(), default=str)
    assert "imap-pw" not in shown and "smtp-pw" not in shown
    assert config.masked()["imap"]["password"] == "********"
    assert "imap-pw" not in repr(config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[programme]\nnmae = 'x'\n", "programme.nmae: unknown key; expected one of "),
        ("[programe]\n", "programe: unknown section; expected one of programme, imap, smtp"),
        ("[programme]\nmeeting_week = 'two'\n", "programme.meeting_week: expected an integer, got str 'two'"),
        ("[programme]\nmeeting_week = true\n", "programme.meeting_week: expected an integer, got bool True"),
        ("[programme]\norganisers = 'a@b.org'\n", "programme.organisers: expected a list of strings"),
        ("[programme]\ntimezone = 'Europe/Lodnon'\n", "programme.timezone: unknown time zone 'Europe/"),
        ("[programme]\naddress = 'not an address'\n", "programme.address: expected an email address"),
        ("[programme]\ncadence = 'every Monday'\n", "programme.cadence: expected e.g. 'first Monday'"),
        ("[programme]\nstart_time = '9am'\n", "programme.start_time: expected HH:MM (24-hour), got '9am'"),
        ("[programme]\nfollowup_day = 'Someday'\n", "programme.followup_day: expected a weekday name"),
        ("[programme]\nforward_unread = true\n", "programme.forward_unread: expected a list of strings"),
        ("[programme]\nforward_unread = ['a desk']\n", "programme.forward_unread: expected an email address"),
        (
            "[programme]\naddress = 'c@x.org'\nforward_unread = ['C@x.org']\n",
            "programme.forward_unread: expected addresses other than the programme's own",
        ),
        ("[programme]\nmeeting_week = 7\n", "programme.meeting_week: expected 1, 2 or 3, got 7"),
        ("[imap]\nport = 993\n", "imap.host: expected the server's host name"),
        ("[imap]\nhost = 'imap.example.org'\nsecurity = 'tls'\n", "imap.security: expected one of ssl"),
        ("[imap]\nhost = 'imap.example.org'\n", "smtp: an [imap] section needs an [smtp] section"),
        (
            "[smtp]\nhost = 'smtp.example.org'\nsecurity = 'none'\n",
            "smtp.security: 'none' (no TLS) is allowed only for a server on this machine",
        ),
        ("[smtp]\nhost = 'h.example.org'\npassword = 'x'\n", "smtp.password: unknown key"),
        ("[lmtp]\nlisten = '8024'\n[smtp]\nhost = 'h.example.org'\n", "lmtp.listen: expected HOST:PORT"),
        ("[limits]\ntoken_days = 0\n", "limits.token_days: expected a positive integer"),
        (
            "[limits]\nconfirmations_per_hour = 0\n",
            "limits.confirmations_per_hour: expected a positive integer",
        ),
        ("[sandbox]\nport = 70000\n", "sandbox.port: expected a port number, got 70000"),
        ("programme = 3\n", "programme: expected a [section] table"),
        ("[programme\n", "(file): is not valid TOML"),
    ],
)
def test_each_mistake_names_the_file_the_key_and_what_was_expected(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert error_for(tmp_path, text).startswith(expected)


def test_a_missing_file_is_an_error_not_the_sandbox(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml: \(file\): not found"):
        load_config(tmp_path / "nothere.toml", {})


def test_check_config_exits_2_with_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, "[programme]\ntimezone = 'Nowhere/Town'\n")
    result = subprocess.run(
        [sys.executable, "-m", "unmentoring", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert f"{path}: programme.timezone: unknown time zone 'Nowhere/Town'" in result.stderr


def test_check_config_prints_the_effective_configuration_without_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_IMAP_SECRET": "s3cret-imap", "TEST_SMTP_SECRET": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "unmentoring", "check-config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "UNMENTORING_CONFIG": str(path)},
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["mode"] == "production"
    assert shown["programme"]["cadence"] == "last Friday"
    assert "s3cret-imap" not in result.stdout


def test_the_readme_names_every_configuration_key() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [
        f"{name}.{f.name}"
        for name, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
        if f.name not in SECRETS and f"`{name}.{f.name}`" not in readme
    ]
    assert missing == [], f"README.md's configuration table lacks {missing}"
