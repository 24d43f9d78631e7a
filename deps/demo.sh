#!/bin/sh
# demo.sh BUILD: `make demo`. Makes the project demo/ (visage init) with the sample photos that
# `make models` put in .cache/samples/ as its sources (three for side A, three for side B),
# extracts their faces into demo/faces/a and demo/faces/b, then says how to open the workbench.
set -eu
cd "$(dirname "$0")/.."

build=${1:-build}
visage=$build/visage
if [ ! -x "$visage" ]; then
    echo "✗ $visage is missing: run 'make' first" >&2
    exit 1
fi
if [ ! -d .cache/samples ]; then
    echo "✗ .cache/samples/ is missing: run 'make models' first" >&2
    exit 1
fi
if [ -d demo ] && [ ! -f demo/visage.ini ]; then
    rm -rf demo # an earlier demo's faces, from before the demo was a project
fi
mkdir -p demo/sources/a demo/sources/b
for i in 1 2 3; do cp -p .cache/samples/sample$i.jpg demo/sources/a/; done
for i in 4 5 6; do cp -p .cache/samples/sample$i.jpg demo/sources/b/; done
[ -f demo/visage.ini ] || "$visage" init demo -A demo/sources/a -B demo/sources/b
echo "extracting the faces of the sample photos"
"$visage" -C demo extract sources/a -o faces/a --skip-existing
"$visage" -C demo extract sources/b -o faces/b --skip-existing
na=$(find demo/faces/a -maxdepth 1 -name '*.png' | wc -l)
nb=$(find demo/faces/b -maxdepth 1 -name '*.png' | wc -l)
echo
echo "✓ the project demo/: $na face(s) in demo/faces/a, $nb in demo/faces/b (PNGs with their metadata)"
echo "  the workbench:  $visage -C demo     (? lists the keys; in tmux: contrib/visage-tmux demo)"
echo "  list faces:     $visage faces demo/faces/a"
echo "  train a model:  $visage -C demo train"
