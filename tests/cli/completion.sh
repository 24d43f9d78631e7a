#!/bin/sh
# completion.sh: contrib/visage.bash offers every command and every flag the commands' --help
# lists, so the completion cannot drift from the command line.
set -u
. "$(dirname "$0")/lib.sh"

comp=contrib/visage.bash
for cmd in init extract faces sort prune train model convert config; do
    grep -q "\\b$cmd\\b" "$comp" || fail "completion lacks the command $cmd"
    run_visage "$cmd" --help
    [ "$rc" -eq 0 ] || fail "visage $cmd --help: exit $rc"
    for flag in $(grep -o -- '--[a-z][a-z-]*' "$T/out" | sort -u); do
        grep -q -- "$flag\\b" "$comp" || fail "completion lacks $cmd $flag"
    done
done
run_visage --help
for cmd in $(sed -n 's/^  \([a-z]*\)  .*/\1/p' "$T/out"); do
    grep -q "\\b$cmd\\b" "$comp" || fail "completion lacks the command $cmd listed by visage --help"
done
if command -v bash >/dev/null; then
    bash -c ". $comp; COMP_WORDS=(visage extract --cen); COMP_CWORD=2; _visage; [ \"\${COMPREPLY[*]}\" = --centering ]" ||
        fail "completion of 'visage extract --cen' is not --centering"
fi
echo ok
