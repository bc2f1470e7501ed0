# Sourced by ./run and ./test: make .venv exist and hold this project with the extras named in $1.
# Reinstalls only when pyproject.toml changed since the last install.
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "unmentoring needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed${extras:+-$extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
installed_with() { [ -f "$1" ] && [ "$(cat "$1")" = "$want" ]; }
# An install with the test extras also serves ./run.
if ! installed_with "$stamp" && ! { [ -z "$extras" ] && installed_with .venv/.installed-test; }; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    echo "$want" > "$stamp"
fi
