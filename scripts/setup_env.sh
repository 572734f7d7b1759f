#!/usr/bin/env bash
# Build or reuse hessdyn's virtual environment, install the project into it, print its path.
#
# The venv lives outside the checkout (default ~/.cache/hessdyn/venv-<key>, or $HESSDYN_VENV) so that
# CI runs on the same machine reuse it: dependencies are installed only when pyproject.toml, setup.py or
# the Python version change (the key); the project itself is reinstalled (editable, no deps) every time,
# since each CI run is a fresh clone at a new path. A fresh machine builds everything from scratch.
#
# usage: scripts/setup_env.sh [extras]   (extras default: dev)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-dev}"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "setup: $python not found; install Python >= 3.10 or set PYTHON=..." >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "setup: hessdyn needs Python >= 3.10 ($python is older); set PYTHON=..." >&2; exit 1; }
key="$( { cat "$here/pyproject.toml" "$here/setup.py"; "$python" -VV; echo "$extras"; } | sha256sum | cut -c1-12)"
venv="${HESSDYN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hessdyn/venv-$key}"
stamp="$venv/.hessdyn-deps-installed"
if [ ! -f "$stamp" ]; then
  echo "setup: building $venv (torch and friends: a few minutes the first time)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # pip (not uv/poetry): on this kind of machine pip takes torch from a local copy.
  "$venv/bin/python" -m pip install -q -e "$here[$extras]" >&2
  touch "$stamp"
else
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$here" >&2 \
    || "$venv/bin/python" -m pip install -q --no-deps -e "$here" >&2
fi
echo "$venv"
