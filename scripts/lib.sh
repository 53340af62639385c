# Shared by scripts/serve and scripts/test: a virtualenv in .venv with statehub installed.
# Usage: . scripts/lib.sh; ensure_venv [EXTRAS]

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

ensure_venv() {
    local extras="${1:-}" root python
    root="$(repo_root)"
    python="${PYTHON:-python3}"
    if [ ! -x "$root/.venv/bin/python" ]; then
        echo "statehub: creating $root/.venv" >&2
        "$python" -m venv "$root/.venv" || {
            echo "error: '$python -m venv' failed; install Python's venv module (Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    local stamp="$root/.venv/.installed${extras:+-$extras}"
    if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
        echo "statehub: installing statehub${extras:+[$extras]} into .venv" >&2
        "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root${extras:+[$extras]}" || return 1
        touch "$stamp"
    fi
    export PATH="$root/.venv/bin:$PATH"
}

missing_debian_packages() {
    local root pkg
    root="$(repo_root)"
    command -v dpkg-query >/dev/null || return 0
    for pkg in $(grep -v '^#' "$root/scripts/debian-packages.txt"); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

# mypy strict over the package as it installs: statehub from clients/statehub, statehub.hub from
# hub/. mypy cannot follow setuptools' package-dir mapping, so a tree of links lays it out.
typecheck() {
    local root tree entry
    root="$(repo_root)"
    tree="$root/.venv/typecheck/statehub"
    rm -rf "$root/.venv/typecheck"
    mkdir -p "$tree"
    for entry in "$root"/clients/statehub/*; do
        ln -s "$entry" "$tree/$(basename "$entry")"
    done
    ln -s "$root/hub" "$tree/hub"
    (cd "$root" && mypy)
}
