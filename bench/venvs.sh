# Sourced by the bench scripts (which set $repo): the Python venvs they
# run the references in, created on first use under target/.
#   oracle_python  target/oracle-venv, zdaemon and friends: exactly the
#                  packages of tests/common/oracle_packages.rs, the list
#                  the tests install and stamp, so a bench never rebuilds
#                  the tests' venv with another list. ZDRS_ORACLE_PYTHON,
#                  if set, is used instead.
#   bench_python   target/bench-venv, supervisord.

# venv_python NAME PACKAGES...: target/NAME with exactly PACKAGES (a stamp
# file records them; another list rebuilds it), under a lock; its python.
venv_python() {
    local venv=$repo/target/$1
    shift
    local wanted="$*"
    mkdir -p "$repo/target"
    exec 9>"$venv.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if [[ "$(cat "$venv/zdrs-ready" 2>/dev/null)" != "$wanted" ]]; then
        echo "== creating $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
        printf '%s' "$wanted" >"$venv/zdrs-ready"
    fi
    exec 9>&-
    echo "$venv/bin/python"
}

oracle_python() {
    if [[ -n "${ZDRS_ORACLE_PYTHON:-}" ]]; then
        echo "$ZDRS_ORACLE_PYTHON"
        return
    fi
    local packages
    packages=$(sed -n 's/^ *"\([^"]*==[^"]*\)",$/\1/p' "$repo/tests/common/oracle_packages.rs")
    if [[ -z "$packages" ]]; then
        echo "bench: no packages read from tests/common/oracle_packages.rs" >&2
        return 1
    fi
    # shellcheck disable=SC2086 # one word per package
    venv_python oracle-venv $packages
}

bench_python() {
    venv_python bench-venv supervisor==4.3.0
}
