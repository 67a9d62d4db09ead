# Shared set-up for scripts/demo and scripts/test: find interpreters, make venvs.
# Sourced, not run. Each venv is rebuilt only when pyproject.toml changes.

VP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VP_VENVS="$VP_ROOT/.venvs"

# Print the path of the newest Python >= 3.12 found, or nothing.
vp_find_py312() {
  local c v
  for c in python3.14 python3.13 python3.12; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9](\.[0-9]+)?$' | sort -t. -k2,2nr -k3,3nr); do
      c="$(pyenv root)/versions/$v/bin/python"
      [ -x "$c" ] && { echo "$c"; return; }
    done
  fi
}

# Print the path of a Python 3.11, or nothing.
vp_find_py311() {
  local c
  for c in python3.11 "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions/$(pyenv versions --bare 2>/dev/null | grep -E '^3\.11(\.[0-9]+)?$' | tail -n1)/bin/python")"; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$c"; return
    fi
  done
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    command -v python3
  fi
}

# vp_venv NAME PYTHON MITMPROXY_SPEC EXTRAS -> prints the venv's python
vp_venv() {
  local name=$1 py=$2 mitm=$3 extras=$4 dir="$VP_VENVS/$1"
  local stamp="$dir/.viteproxy-stamp"
  local want
  want="$(cat "$VP_ROOT/pyproject.toml" | sha256sum | cut -c1-16) $mitm $extras"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up $dir ($("$py" --version 2>&1), $mitm)" >&2
    rm -rf "$dir"
    "$py" -m venv "$dir" >&2 || return 1
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2 || return 1
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -e "$VP_ROOT[$extras]" "$mitm" >&2 || return 1
    echo "$want" > "$stamp"
  fi
  echo "$dir/bin/python"
}
