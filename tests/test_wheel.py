"""The package as an organiser installs it: build the wheel, install it into a venv outside the checkout,
and run `unmentoring demo` and `check-config` from a folder where no source file can be imported.

The venv is kept between runs under .venv/ (keyed on pyproject.toml, so a new dependency makes a new
one); each run builds and force-reinstalls the project's wheel into it, which removes the previous
install's files first, so a file missing from the wheel cannot hide behind an older copy.
"""

from __future__ import annotations

import email
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
# Build from a copy: setuptools' build/ folder in the checkout could carry files the source no longer has.
NOT_BUILT_FROM = shutil.ignore_patterns(
    ".venv", ".git", "data", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "tests"
)
INSTALL_TIMEOUT = 900.0  # the first install downloads matplotlib, numpy... from PyPI
RUN_TIMEOUT = 120.0


def run(
    args: list[str | Path], *, cwd: Path, timeout: float = INSTALL_TIMEOUT
) -> subprocess.CompletedProcess:
    """Run a command outside the checkout's influence: no PYTHONPATH, no configuration from the caller."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "UNMENTORING_CONFIG", "PYTHONHOME")}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} -> exit {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result


def cached_venv() -> tuple[Path, bool]:
    """(the venv, whether the project's dependencies are installed in it yet)."""
    key = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()[:12]
    venv = REPO / ".venv" / f"wheel-check-{key}"
    ready = venv / ".dependencies-installed"
    if venv.exists() and not ready.exists():
        shutil.rmtree(venv)  # an interrupted first install: start again rather than trust it
    if not venv.exists():
        for old in venv.parent.glob("wheel-check-*"):
            shutil.rmtree(old)  # made for an older pyproject.toml
        run([sys.executable, "-m", "venv", venv], cwd=REPO)
        build_requires = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["build-system"]["requires"]
        run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", *build_requires], cwd=REPO)
    return venv, ready.exists()


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)
def test_the_installed_wheel_runs_the_demo_outside_the_checkout(tmp_path: Path) -> None:
    venv, has_dependencies = cached_venv()
    python = venv / "bin" / "python"
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_BUILT_FROM)
    dist = tmp_path / "dist"
    run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, source],
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("unmentoring-*.whl")

    shipped = set(zipfile.ZipFile(wheel).namelist())
    for name in ("intro.txt", "intro.html", "_base.txt", "_base.html", "summary.html"):
        assert f"mailer/templates/{name}" in shipped, f"{name} is not in {wheel.name}"

    if has_dependencies:
        run(
            [python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", wheel], cwd=tmp_path
        )
    else:
        run([python, "-m", "pip", "install", "--quiet", wheel], cwd=tmp_path)
        (venv / ".dependencies-installed").touch()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([python, "-c", "import mailer; print(mailer.__file__)"], cwd=elsewhere, timeout=RUN_TIMEOUT)
    assert Path(where.stdout.strip()).is_relative_to(venv), f"mailer imported from {where.stdout}"

    demo = run(
        [venv / "bin" / "unmentoring", "demo", "--people", "6", "--rounds", "1", "--dir", elsewhere / "demo"],
        cwd=elsewhere,
        timeout=RUN_TIMEOUT,
    )
    assert "summary email :" in demo.stdout, demo.stdout
    summary = email.message_from_bytes(
        (elsewhere / "demo" / "summary" / "summary.eml").read_bytes(), policy=policy.default
    )
    assert isinstance(summary, EmailMessage)
    assert summary["Subject"], "the summary has no subject"
    text = summary.get_body(("plain",))
    assert text is not None and "pause" in text.get_content().lower()
    assert any(part.get_content_type() == "image/png" for part in summary.walk())

    checked = run([venv / "bin" / "unmentoring", "check-config"], cwd=elsewhere, timeout=RUN_TIMEOUT)
    assert "every kind renders with sample values" in checked.stderr, checked.stderr
