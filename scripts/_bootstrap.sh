# Shared by scripts/run and scripts/test: a virtualenv in .venv with lumaweb installed.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
mkdir -p "$ROOT/.run"
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "==> .venv is broken (no pip): making it again"
  rm -rf "$VENV" "$ROOT"/.run/installed-*
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating a virtualenv in .venv"
  if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "!! could not make a virtualenv: on Debian/Ubuntu, apt-get install python3-venv" >&2
    exit 1
  fi
fi
stamp="$ROOT/.run/installed-$1"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing lumaweb and its dependencies ($1)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  if [ "$1" = dev ]; then
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
  else
    "$VENV/bin/python" -m pip install --quiet -e .
  fi
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"

redis_answers() {  # redis_answers URL -> exit 0 when a Redis answers PING there
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
}
