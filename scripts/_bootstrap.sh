# Shared by scripts/run and scripts/test: a virtualenv in .venv with lumaweb installed from a
# lock file with hashes (requirements/app.lock for run, requirements/dev.lock for test; made by
# scripts/lock from the ranges in pyproject.toml). Re-installs only when that lock or
# pyproject.toml changed since the last install.
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
lock="requirements/$1.lock"
stamp="$ROOT/.run/installed-$1"
log="$ROOT/.run/pip-$1.log"
want="$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing lumaweb and its dependencies from $lock (log: .run/pip-$1.log)"
  rm -f "$stamp"
  # Every file checked against the lock's hashes; then the project itself, built by the locked
  # setuptools (no build isolation: nothing unhashed is fetched) and without touching the pins.
  if ! { "$VENV/bin/python" -m pip install --require-hashes -r "$lock" \
         && "$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e .; } >"$log" 2>&1
  then
    tail -n 30 "$log" >&2
    echo "!! installing from $lock failed (whole log: .run/pip-$1.log)" >&2
    exit 1
  fi
  # The lock must still satisfy pyproject.toml: a range or a dependency changed there without
  # ./scripts/lock would otherwise go unnoticed until an import fails.
  if ! "$VENV/bin/python" - "$1" <<'PY' >&2
import sys
from importlib.metadata import PackageNotFoundError, distribution, version

from packaging.requirements import Requirement

extra = sys.argv[1] if sys.argv[1] != "app" else ""
stale = []
for line in distribution("lumaweb").requires or []:
    req = Requirement(line)
    if req.marker and not req.marker.evaluate({"extra": extra}):
        continue
    try:
        have = version(req.name)
    except PackageNotFoundError:
        stale.append(f"{req.name}{req.specifier}: not in the lock")
        continue
    if not req.specifier.contains(have, prereleases=True):
        stale.append(f"{req.name}{req.specifier}: the lock has {have}")
if stale:
    print("!! the lock file does not match pyproject.toml; run ./scripts/lock", *stale, sep="\n   ")
    sys.exit(1)
PY
  then
    exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"

redis_answers() {  # redis_answers URL -> exit 0 when a Redis answers PING there
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
}
