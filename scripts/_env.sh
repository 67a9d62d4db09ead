# Shared set-up for scripts/demo and scripts/test: find interpreters, make venvs.
# Sourced, not run. Each venv is rebuilt only when pyproject.toml changes.

VP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VP_VENVS="$VP_ROOT/.venvs"

# Candidate interpreters: python3.X on PATH, then every pyenv version.
# (pyenv's shims exist for versions that are not active, so each is run to check.)
vp_candidates() {
  local c v
  for c in python3.14 python3.13 python3.12 python3.11 python3; do
    command -v "$c" 2>/dev/null
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null); do
      c="$(pyenv root)/versions/$v/bin/python"
      [ -x "$c" ] && echo "$c"
    done
  fi
}

# vp_find_python CHECK: the first working candidate whose version passes CHECK
# (a Python expression over `v`, the (major, minor) tuple), newest first.
vp_find_python() {
  local check=$1 c best="" bestv=""
  while read -r c; do
    [ -n "$c" ] || continue
    local v
    v=$("$c" -c "import sys; v=sys.version_info[:2]; print('%d.%02d' % v if ($check) else '')" 2>/dev/null) || continue
    [ -n "$v" ] || continue
    if [ -z "$bestv" ] || [ "$(printf '%s\n%s\n' "$v" "$bestv" | sort -r | head -n1)" = "$v" ] && [ "$v" != "$bestv" ]; then
      best=$c; bestv=$v
    fi
  done < <(vp_candidates)
  echo "$best"
}

vp_find_py312() { vp_find_python 'v >= (3, 12)'; }
vp_find_py311() { vp_find_python 'v == (3, 11)'; }

# vp_venv NAME PYTHON MITMPROXY_SPEC EXTRAS -> prints the venv's python
vp_venv() {
  local name=$1 py=$2 mitm=$3 extras=$4 dir="$VP_VENVS/$1"
  local stamp="$dir/.viteproxy-stamp"
  local want
  want="$(cat "$VP_ROOT/pyproject.toml" | sha256sum | cut -c1-16) $mitm $extras"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up $dir ($("$py" --version 2>&1), $mitm)..." >&2
    rm -rf "$dir"
    mkdir -p "$VP_VENVS"
    local log="$VP_VENVS/$name-setup.log"
    # pip's own chatter (and this machine's index warnings) go to a log, shown on failure.
    if ! { "$py" -m venv "$dir" \
           && "$dir/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
           && "$dir/bin/python" -m pip install --disable-pip-version-check -e "$VP_ROOT[$extras]" "$mitm"; } \
         > "$log" 2>&1; then
      tail -n 30 "$log" >&2
      echo "set-up of $dir failed; the whole log is $log" >&2
      return 1
    fi
    echo "$want" > "$stamp"
  fi
  echo "$dir/bin/python"
}

# vp_tool_python: the Python that runs the product from this checkout, with the
# runtime and demo dependencies only (no test tools): $VITEPROXY_PYTHON if set,
# else .venvs/run on the newest mitmproxy line this machine's Pythons allow.
vp_tool_python() {
  if [ -n "${VITEPROXY_PYTHON:-}" ]; then echo "$VITEPROXY_PYTHON"; return; fi
  local py mitm
  py=$(vp_find_py312); mitm='mitmproxy>=12,<13'
  if [ -z "$py" ]; then py=$(vp_find_py311); mitm='mitmproxy>=11.0.2,<11.1'; fi
  [ -n "$py" ] || { echo "viteproxy: needs Python 3.11 or newer" >&2; return 2; }
  vp_venv run "$py" "$mitm" demo
}
