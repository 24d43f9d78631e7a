#!/bin/sh
# run.sh BUILD SANBUILD: `make test`'s driver; run.sh --gpu BUILD: `make test-gpu`'s, the GPU
# tests (BUILD/tests/test_cuda_*, which say "skipped: no GPU" on a machine without one) alone. Runs every BUILD/tests/test_* binary, then every
# tests/cli/*.sh script against BUILD/visage, then the bad-input and workbench scripts and the unit tests of the
# parsers, geometry, kernels, checkpoints, augmentation, the trainer's socket, terminal images and
# the workbench's layout again on the ASan+UBSan build. One
# line per test (PASS/FAIL/SKIP and its time), the output of each failure, and a closing
# "N passed, N failed, N skipped"; exit 1 on any failure.
# All run from the repository root. VISAGE_TEST_TIMEOUT (seconds, default 1200) bounds each one.
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

gpu_only=0
if [ "${1:-}" = --gpu ]; then
    gpu_only=1
    shift
fi
build=${1:-build}
sanbuild=${2:-build-san}
# the cli scripts get an absolute path to the binary
abs() {
    case $1 in /*) echo "$1" ;; *) echo "$root/$1" ;; esac
}
limit=${VISAGE_TEST_TIMEOUT:-1200}

passed=0 failed=0 skipped=0 failures=
out=$(mktemp "${TMPDIR:-/tmp}/visage-test.XXXXXX")
trap 'rm -f "$out"' EXIT
trap 'exit 130' INT TERM

now_ms() {
    t=$(date +%s%N 2>/dev/null)
    case $t in
    *[!0-9]*|'') echo $(($(date +%s) * 1000)) ;;
    *) echo $((t / 1000000)) ;;
    esac
}

# report NAME STATUS MS [NOTE]
report() {
    ms=$3
    secs=$((ms / 1000)).$(printf '%02d' $((ms % 1000 / 10)))
    printf '%-4s %-34s %7ss%s\n' "$2" "$1" "$secs" "${4:+  $4}"
    case $2 in
    PASS) passed=$((passed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    FAIL) failed=$((failed + 1)) failures="$failures $1" ;;
    esac
}

# run_test NAME COMMAND...: runs it with the time limit, output into $out, and reports.
run_test() {
    name=$1
    shift
    start=$(now_ms)
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 10 "$limit" "$@" >"$out" 2>&1 </dev/null
    else
        "$@" >"$out" 2>&1 </dev/null
    fi
    rc=$?
    ms=$(($(now_ms) - start))
    if [ "$rc" -eq 0 ]; then
        # a test that skips all of its work says "skipped: why" (check.h's SKIP); one that ran
        # checks and skipped a part still passes, with the reason noted
        reason=$(grep -m 1 '^skipped:' "$out" | sed 's/^skipped: *//')
        if [ -z "$reason" ]; then
            report "$name" PASS "$ms"
        elif grep -q ' checks passed$' "$out"; then
            report "$name" PASS "$ms" "(partly skipped: $reason)"
        else
            report "$name" SKIP "$ms" "$reason"
        fi
        return
    fi
    case $rc in
    124|137) note="timed out after ${limit}s" ;;
    *) note="exit status $rc" ;;
    esac
    report "$name" FAIL "$ms" "$note"
    echo "---- output of $name (last 100 lines) ----"
    if [ -s "$out" ]; then tail -n 100 "$out"; else echo "(no output)"; fi
    echo "---- end of $name ----"
}

# missing NAME WHY: a test that should exist but cannot run.
missing() {
    report "$1" FAIL 0 "$2"
}

if [ "$gpu_only" = 1 ]; then
    echo "GPU tests ($build/tests):"
    found=0
    for t in "$build"/tests/test_cuda_*; do
        [ -x "$t" ] || continue
        found=1
        run_test "${t##*/}" "$t"
        if [ "$rc" -eq 0 ] && ! grep -q "^skipped:" "$out"; then grep -v "^ *$" "$out" | grep -v "checks passed$"; fi
    done
    [ "$found" = 1 ] || missing "GPU tests" "no $build/tests/test_cuda_* binaries: run 'make' first"
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
fi

echo "unit tests ($build/tests):"
found=0
for t in "$build"/tests/test_*; do
    if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
    case ${t##*/} in *.*) continue ;; esac
    found=1
    run_test "${t##*/}" "$t"
done
if [ "$found" -eq 0 ]; then
    missing "unit tests" "no $build/tests/test_* binaries: run 'make' first"
fi

echo "command-line tests (tests/cli, $build/visage):"
for s in tests/cli/*.sh; do
    # a test script starts with #!; one without (lib.sh) is a helper the tests source
    if [ ! -f "$s" ] || [ "$(head -c 2 "$s")" != "#!" ]; then continue; fi
    if [ -x "$build/visage" ]; then
        run_test "cli/${s##*/}" sh "$s" "$(abs "$build/visage")"
    else
        missing "cli/${s##*/}" "$build/visage is missing: run 'make' first"
    fi
done

echo "under ASan+UBSan ($sanbuild):"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS UBSAN_OPTIONS
if [ -x "$sanbuild/visage" ]; then
    run_test "san/cli/bad_input.sh" sh tests/cli/bad_input.sh "$(abs "$sanbuild/visage")"
    run_test "san/cli/workbench.sh" sh tests/cli/workbench.sh "$(abs "$sanbuild/visage")"
else
    missing "san/cli/bad_input.sh" "$sanbuild/visage is missing: run 'make SAN=1' first"
fi
for name in test_media test_config test_align test_nn test_facenet test_grad test_train_ops test_ckpt test_augment \
    test_remote test_termimg test_workbench; do
    if [ -x "$sanbuild/tests/$name" ]; then
        run_test "san/$name" "$sanbuild/tests/$name"
    else
        missing "san/$name" "$sanbuild/tests/$name is missing: run 'make SAN=1' first"
    fi
done
unset ASAN_OPTIONS UBSAN_OPTIONS

echo
if [ "$failed" -gt 0 ]; then
    echo "failed:$failures"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
