"""History carries over, and the rounds go out as a table: `members import --joined-column`,
`report import` (past rounds from a spreadsheet) and `report export`, driven through the real CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mailer.settings import mail_settings_from_config
from mailer.summary import build_summary
from matcher.store import Store
from tests.helpers.cli_env import CliEnv, snapshot, write_csv
from tests.servers import free_port
from unmentoring.config import load_config

FORM_HEADER = ["Timestamp", "Email Address", "Full name", "Company", "How often"]
FORM_ROWS = [
    ["14/03/2023 09:12:44", "ann@example.org", "Ann Lee", "Council", "1"],
    ["14/03/2023 10:01:02", "bob@example.org", "Bob Ray", "NHS", "1"],
    ["2023-03-15 08:00", "cat@example.org", "Cat Orr", "GDS", "2"],
    ["15/03/2023 17:30:00", "dan@example.org", "Dan Moss", "ONS", ""],
]
# Which column of the form each of `members import`'s --X-column options reads.
COLUMN_OF = {
    "email": "Email Address",
    "name": "Full name",
    "org": "Company",
    "joined": "Timestamp",
    "frequency": "How often",
}
FORM_COLUMNS = [part for option, column in COLUMN_OF.items() for part in (f"--{option}-column", column)]
# The old system's spreadsheet: a date, who was in each group, and whether they met.
OLD_HEADER = ["Date", "Members", "Met"]
OLD_ROWS = [
    ["03/04/2023", "ann@example.org; bob@example.org", "yes"],
    ["03/04/2023", "cat@example.org, dan@example.org", "no"],
    ["01/05/2023", "ann@example.org; cat@example.org", "Y"],
    ["01/05/2023", "bob@example.org; dan@example.org", ""],
]


def programme(tmp_path: Path, name: str) -> CliEnv:
    env = CliEnv(tmp_path / name, sandbox_port=free_port())
    form = write_csv(env.root / "form.csv", FORM_HEADER, FORM_ROWS)
    env.ok("members", "import", str(form), *FORM_COLUMNS)
    return env


def export(env: CliEnv, *args: str) -> str:
    return env.ok("report", "export", *args).stdout


def test_join_dates_and_frequency_come_from_the_form(tmp_path: Path) -> None:
    env = programme(tmp_path, "p")
    by_address = {m["address"]: m for m in env.members()}
    assert by_address["ann@example.org"]["joined_at"].startswith("2023-03-14")
    assert by_address["cat@example.org"]["joined_at"].startswith("2023-03-15")
    assert [by_address[a]["frequency"] for a in sorted(by_address)] == [1, 1, 2, 1]


def test_bad_form_dates_are_reported_by_line_and_nothing_is_imported(tmp_path: Path) -> None:
    env = CliEnv(tmp_path / "p", sandbox_port=free_port())
    rows = [*FORM_ROWS[:2], ["last Tuesday", "cat@example.org", "Cat", "GDS", "4"]]
    form = write_csv(env.root / "form.csv", FORM_HEADER, rows)
    result = env.invoke("members", "import", str(form), *FORM_COLUMNS)
    assert result.exit_code == 1
    assert "line 4: Timestamp: not a date" in result.stderr
    assert env.status()["members"]["active"] == 0


def test_past_rounds_import_after_a_dry_run_and_the_matcher_avoids_who_met(tmp_path: Path) -> None:
    env = programme(tmp_path, "p")
    old = write_csv(env.root / "old.csv", OLD_HEADER, OLD_ROWS)
    before = snapshot(env.data_dir)

    dry = env.ok("report", "import", str(old), "--dry-run").stdout
    assert "dry run: would import 2 rounds (2023-04 to 2023-05), 4 groups" in dry
    assert "4 members' join dates moved back" not in dry  # they joined in March, before the rounds
    assert snapshot(env.data_dir) == before

    assert "imported 2 rounds" in env.ok("report", "import", str(old)).stdout
    rows = list(csv.DictReader(io.StringIO(export(env, "--contacts"))))
    assert [(r["round"], r["members"], r["outcome"]) for r in rows] == [
        ("2023-04", "ann@example.org; bob@example.org", "met"),
        ("2023-04", "cat@example.org; dan@example.org", "missed"),
        ("2023-05", "ann@example.org; cat@example.org", "met"),
        ("2023-05", "bob@example.org; dan@example.org", "no reply"),
    ]
    # Ann met Bob and Cat, Bob and Dan were grouped: the only new pairs left are Ann-Dan, Bob-Cat.
    preview = env.ok("round", "preview").stdout
    groups = sorted(line for line in preview.splitlines() if line.startswith("Group "))
    assert len(groups) == 2 and "0 repeated pairs" in preview, preview
    assert any("Ann" in g and "Dan" in g for g in groups) and any("Bob" in g and "Cat" in g for g in groups)

    again = env.invoke("report", "import", str(old))
    assert again.exit_code == 1 and "line 2: round 2023-04 is already in the database" in again.stderr


def test_growth_starts_at_the_real_beginning(tmp_path: Path) -> None:
    env = programme(tmp_path, "p")
    # Dan was in a round before the date the form gives him: he joined by then.
    early = write_csv(
        env.root / "old.csv", OLD_HEADER, [["06/02/2023", "dan@example.org; ann@example.org", "1"]]
    )
    assert "2 members' join dates moved back" in env.ok("report", "import", str(early)).stdout
    config = load_config(env.config_path, {})
    with Store.open(config.database_path) as store:
        growth = build_summary(store, "2023-02", mail_settings_from_config(config)).values["growth"]
    assert growth[0] == {"month": "2023-02", "members": 2, "joins": 2, "leaves": 0}


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(tmp_path: Path) -> None:
    env = programme(tmp_path, "p")
    rows = [
        ["03/04/2023", "ann@example.org; bob@example.org", "yes"],
        ["31/02/2023", "cat@example.org; dan@example.org", "yes"],  # no such date
        ["03/04/2023", "cat@example.org;\nzed@example.org", "no"],  # unknown member, cell on two lines
        ["03/04/2023", "bob@example.org; dan@example.org", "maybe"],
        ["03/04/2023", "ann@example.org; dan@example.org", "no"],  # Ann is already in a group
        ["03/04/2023", "dan@example.org", "no"],
    ]
    path = write_csv(env.root / "old.csv", OLD_HEADER, rows)
    before = snapshot(env.data_dir)
    result = env.invoke("report", "import", str(path))
    assert result.exit_code == 1
    problems = result.stderr.splitlines()
    assert problems[:5] == [
        "line 3: not a date (expected e.g. 2024-03-04 or 04/03/2024): '31/02/2023'",
        "line 4: no member with address 'zed@example.org' (import the members first)",
        "line 6: outcome 'maybe' is not one of met, missed, no reply, disputed (or yes/no)",
        "line 7: ann@example.org is already in a group of round 2023-04 (line 2)",
        "line 8: a group needs at least two members",
    ]
    assert "5 bad row(s); nothing imported" in result.stderr
    assert snapshot(env.data_dir) == before

    no_columns = write_csv(env.root / "wrong.csv", ["When", "Who"], [["x", "y"]])
    refused = env.invoke("report", "import", str(no_columns))
    assert refused.exit_code == 1 and "line 1: no column date, members, met (or outcome)" in refused.stderr


def test_the_export_round_trips_through_the_import(tmp_path: Path) -> None:
    first = programme(tmp_path, "first")
    rows = [
        ["round", "date", "members", "outcome", "said_met", "said_missed", "reasons"],
        [
            "2023-04",
            "2023-04-03",
            "ann@example.org; bob@example.org",
            "disputed",
            "ann@example.org",
            "bob@example.org",
            'bob@example.org: =HYPERLINK("http://x") never heard back',
        ],
        ["2023-04", "2023-04-03", "cat@example.org; dan@example.org", "missed", "", "", "diary clash"],
        ["2023-05", "2023-05-01", "ann@example.org; cat@example.org; dan@example.org", "met", "", "", ""],
    ]
    path = write_csv(first.root / "old.csv", rows[0], rows[1:])
    first.ok("report", "import", str(path))
    exported = export(first, "--contacts")

    second = programme(tmp_path, "second")
    (second.root / "export.csv").write_text(exported)
    second.ok("report", "import", str(second.root / "export.csv"))
    assert export(second, "--contacts") == exported

    records = list(csv.DictReader(io.StringIO(exported)))
    assert records[0]["outcome"] == "disputed" and records[0]["said_met"] == "ann@example.org"
    assert records[0]["reasons"] == 'bob@example.org: =HYPERLINK("http://x") never heard back'
    assert records[1]["reasons"] == "cat@example.org: diary clash"


def test_the_export_names_no_one_unless_asked_and_json_agrees_with_csv(tmp_path: Path) -> None:
    env = programme(tmp_path, "p")
    env.ok("report", "import", str(write_csv(env.root / "old.csv", OLD_HEADER, OLD_ROWS)))
    plain = export(env)
    assert "@" not in plain and "Ann" not in plain
    as_json = json.loads(export(env, "--format", "json"))
    as_csv = list(csv.DictReader(io.StringIO(plain)))
    assert [{k: str(v) for k, v in row.items()} for row in as_json] == as_csv


@pytest.mark.parametrize("word", ["open"])
def test_an_open_round_is_not_imported(tmp_path: Path, word: str) -> None:
    env = programme(tmp_path, "p")
    path = write_csv(
        env.root / "old.csv", OLD_HEADER, [["03/04/2023", "ann@example.org; bob@example.org", word]]
    )
    result = env.invoke("report", "import", str(path))
    assert result.exit_code == 1 and "line 2: the round is still open" in result.stderr


def test_the_gallery_draws_one_diagram_per_round_of_the_whole_history(tmp_path: Path) -> None:
    env = programme(tmp_path, "p")
    env.ok("report", "import", str(write_csv(env.root / "old.csv", OLD_HEADER, OLD_ROWS)))
    said = env.ok("summary", "--gallery", str(tmp_path / "gallery")).stdout
    assert "wrote 2 diagrams" in said
    written = sorted(p.name for p in (tmp_path / "gallery").iterdir())
    assert written == ["round-2023-04.png", "round-2023-05.png"]
    assert all(
        (tmp_path / "gallery" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for name in written
    )
    both = env.invoke("summary", "--send", "--gallery", str(tmp_path / "g2"))
    assert both.exit_code == 2 and "exactly one of" in both.output
