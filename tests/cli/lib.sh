# lib.sh: shared helpers of the command-line regression tests (sourced; POSIX sh).
# Each test script takes the visage binary as $1, runs from the repository root, prints "ok" or
# "skipped: why" as its last line and exits non-zero on the first failure.

LC_ALL=C # byte-wise greps: file names in messages need not be UTF-8
export LC_ALL
VISAGE=${1:?usage: $0 path/to/visage}
case $VISAGE in /*) ;; *) VISAGE=$(pwd)/$VISAGE ;; esac
DATA=${VISAGE_DATA:-../shared/data}
case $DATA in /*) ;; *) DATA=$(pwd)/$DATA ;; esac
SAMPLES=${VISAGE_SAMPLES:-.cache/samples}
T=$(mktemp -d "${TMPDIR:-/tmp}/visage-cli.XXXXXX")
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL: $*" >&2
    [ -f "$T/err" ] && { echo "--- stderr:" >&2; cat "$T/err" >&2; }
    [ -f "$T/out" ] && { echo "--- stdout:" >&2; cat "$T/out" >&2; }
    exit 1
}

have_data() { [ -d "$DATA" ]; }

# synthetic_faces: two small face sets, $T/a and $T/b (build/tests/test_learn --write-faces), for
# training without data
synthetic_faces() {
    gen=$(dirname "$VISAGE")/tests/test_learn
    [ -x "$gen" ] || fail "$gen is missing (run make)"
    "$gen" --write-faces "$T/a" a 12 1 >/dev/null || fail "cannot write synthetic faces (a)"
    "$gen" --write-faces "$T/b" b 12 2 >/dev/null || fail "cannot write synthetic faces (b)"
}
have_models() { [ -f models/ssd_mobilenetv1_model-weights_manifest.json ]; }

# run_visage ARGS...: runs visage with stdout in $T/out, stderr in $T/err, status in $rc.
run_visage() {
    rc=0
    "$VISAGE" "$@" >"$T/out" 2>"$T/err" || rc=$?
}

# expect_bad_input WHAT NEEDLE ARGS...: exit status 1 (not a crash, not success) and one error
# message on stderr that contains NEEDLE (the file name).
expect_bad_input() {
    what=$1 needle=$2
    shift 2
    run_visage "$@"
    [ "$rc" -eq 1 ] || fail "$what: exit status $rc, expected 1"
    grep -q "visage.*$needle" "$T/err" || fail "$what: the message does not name '$needle'"
    n=$(grep -c '^visage' "$T/err")
    [ "$n" -le 2 ] || fail "$what: $n error lines, expected one message"
}

# no_partial_files DIR: no temporary or half-written face file left, every PNG complete.
no_partial_files() {
    if find "$1" -name '.*tmp*' | grep -q .; then fail "temporary files left in $1: $(find "$1" -name '.*tmp*')"; fi
    for f in $(find "$1" -name '*.png'); do
        tail -c 12 "$f" | od -An -c | grep -q 'I   E   N   D' || fail "$f: incomplete PNG"
    done
}

# al_faces FILE: how many faces an alignments file holds
al_faces() { grep -o '"landmarks"' "$1" | wc -l | tr -d ' '; }

# wait_for_faces DIR N: until DIR holds N face PNGs (a running extraction), at most a minute
wait_for_faces() {
    i=0
    while [ "$(count_png "$1" 2>/dev/null)" -lt "$2" ] && [ "$i" -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
}

count_png() { find "$1" -maxdepth 1 -name '*.png' | wc -l | tr -d ' '; }
