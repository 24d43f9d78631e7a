#!/bin/sh
# install.sh: `make deps`. Installs the Debian/Ubuntu packages of deps/packages.txt that are not
# installed yet, with apt-get (through sudo when not root). An `npm` already on PATH stands in for
# the npm package (Node.js from elsewhere ships its own npm, and Debian's would conflict with it).
set -eu
cd "$(dirname "$0")/.."

list=deps/packages.txt
packages=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | awk '{printf "%s ", $1}')

if ! command -v dpkg-query >/dev/null 2>&1; then
    # not Debian or Ubuntu: fine when the libraries and tools are there already
    if pkg-config --exists libavformat libavcodec libavutil libswscale libpng jansson inih openblas 2>/dev/null &&
        command -v npm >/dev/null 2>&1; then
        echo "✓ libraries present (no dpkg: packages not checked one by one)"
        exit 0
    fi
    echo "✗ make deps needs Debian or Ubuntu (dpkg and apt-get); install these by hand: $packages" >&2
    exit 1
fi

missing=
for p in $packages; do
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
        continue
    fi
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing="$missing $p"
    fi
done
missing=${missing# }

if [ -z "$missing" ]; then
    echo "✓ all packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "✗ missing packages: $missing" >&2
    echo "  visage cannot install them without root or sudo; as root, run:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing" >&2
    exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/visage-deps.XXXXXX")
trap 'rm -f "$log"' EXIT
trap 'exit 130' INT TERM

run() {
    # $as_root is empty or "sudo": left unquoted on purpose so it vanishes when empty
    # shellcheck disable=SC2086
    if ! $as_root env DEBIAN_FRONTEND=noninteractive "$@" >"$log" 2>&1; then
        echo "✗ failed: ${as_root:+$as_root }$*" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

echo "installing:$( [ -n "$as_root" ] && echo " (sudo)") $missing"
run apt-get update
# shellcheck disable=SC2086
run apt-get install -y --no-install-recommends $missing
echo "✓ installed $missing"
