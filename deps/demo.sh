#!/bin/sh
# demo.sh BUILD: `make demo`. Extracts the faces of the sample photos that `make models` put in
# .cache/samples/ into demo/faces/, then says where they went and how to look at them.
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

echo "extracting the faces of the sample photos in .cache/samples/"
"$visage" extract .cache/samples -o demo/faces
n=$(find demo/faces -maxdepth 1 -name '*.png' | wc -l)
echo
echo "✓ $n face(s) in demo/faces/, one PNG each with its metadata inside"
echo "  list them:     $visage faces demo/faces"
echo "  sort them:     $visage sort demo/faces --by yaw"
echo "  look at them:  any image viewer (they are ordinary PNGs), e.g. xdg-open demo/faces"
