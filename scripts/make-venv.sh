#!/usr/bin/env bash
# Create the project's virtual environment and install Floorwalker with its pinned
# dependencies (constraints.txt) in editable mode.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Floorwalker needs Python >= 3.11; '$python' is $("$python" --version 2>&1 || echo missing). Set PYTHON=python3.11 (or newer)." >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
