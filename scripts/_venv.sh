# Shared set-up for scripts/demo and scripts/test: a project virtual environment with the pinned
# dependencies (constraints.txt). Sourced, not run. Re-installs only when the pins change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LUMBO_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "Lumbo needs Python 3.11 or newer (python3 --version says: $(python3 --version 2>&1))." >&2
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  # Installs Debian packages when apt is there; a no-op for packages already present.
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get not found: install $* by hand" >&2; return 1; }
  if [ -z "${_LUMBO_APT_UPDATED:-}" ]; then as_root apt-get update -qq; _LUMBO_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

PY="$(find_python)"
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    pyver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install "python${pyver}-venv" || apt_install python3-venv
  fi
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.lumbo-installed${EXTRAS:+-$EXTRAS}"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Setting up $VENV (pinned by constraints.txt) ..." >&2
  log="$VENV/install.log"
  spec="$ROOT"; [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
  if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$spec"; } \
       >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "installing Lumbo into $VENV failed; the whole log is in $log" >&2
    exit 1
  fi
  "$VENV/bin/python" -c 'import api, processing, sensors, feedback, recordings' \
    || { echo "Lumbo does not import after installing; see $log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
