#!/bin/sh
# models.sh: `make models`. Puts the face-network weights in models/ and the sample photos in
# .cache/samples/, from the pinned npm package @vladmandic/face-api (MIT), its sha256 checked.
# Nothing is half-installed: the files are unpacked into a temporary folder under .cache/ and
# renamed into place only when all of them are there and their checksums are written.
set -eu
cd "$(dirname "$0")/.."

PKG=@vladmandic/face-api@1.7.15
TGZ=vladmandic-face-api-1.7.15.tgz
SHA256=0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031
NETS="ssd_mobilenetv1_model face_landmark_68_model face_recognition_model"
SAMPLES="sample1 sample2 sample3 sample4 sample5 sample6"

present() {
    for n in $NETS; do
        [ -s "models/$n-weights_manifest.json" ] && [ -s "models/$n.bin" ] || return 1
    done
    for s in $SAMPLES; do
        [ -s ".cache/samples/$s.jpg" ] || return 1
    done
    [ -s models/SHA256SUMS ] && (cd models && sha256sum --quiet --strict -c SHA256SUMS) >/dev/null 2>&1
}

if present; then
    echo "✓ models present"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "✗ make models needs npm to fetch $PKG: run 'make deps' (installs npm) first" >&2
    exit 1
fi

mkdir -p .cache
tmp=$(mktemp -d .cache/models.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "fetching $PKG (npm pack)"
if ! npm pack "$PKG" --pack-destination "$tmp" >"$tmp/npm.log" 2>&1; then
    # the first npm error line that says what happened (not the code/errno lines or the stack)
    why=$(sed -n -E 's/^npm (error|ERR!) +//p' "$tmp/npm.log" | sed -E 's/^network +//' \
        | grep -v -E '^(code|syscall|errno) |^at |complete log|^$' | head -n 1)
    [ -n "$why" ] || why=$(tail -n 1 "$tmp/npm.log")
    echo "✗ 'npm pack $PKG' failed: $why" >&2
    echo "  (no network or registry unreachable? models/ was left as it was)" >&2
    exit 1
fi
if [ ! -f "$tmp/$TGZ" ]; then
    echo "✗ 'npm pack $PKG' did not write $TGZ" >&2
    exit 1
fi

got=$(sha256sum "$tmp/$TGZ" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
    echo "✗ $TGZ: sha256 is $got, expected $SHA256" >&2
    echo "  the registry served a different $PKG; nothing was installed" >&2
    exit 1
fi

members="package/LICENSE"
for n in $NETS; do
    members="$members package/model/$n-weights_manifest.json package/model/$n.bin"
done
for s in $SAMPLES; do
    members="$members package/demo/$s.jpg"
done
mkdir "$tmp/x"
# shellcheck disable=SC2086
if ! tar -xzmf "$tmp/$TGZ" -C "$tmp/x" $members 2>"$tmp/tar.log"; then
    echo "✗ $TGZ: cannot unpack the model files: $(head -n 1 "$tmp/tar.log")" >&2
    exit 1
fi

mkdir "$tmp/models" "$tmp/samples"
for n in $NETS; do
    mv "$tmp/x/package/model/$n-weights_manifest.json" "$tmp/x/package/model/$n.bin" "$tmp/models/"
done
mv "$tmp/x/package/LICENSE" "$tmp/models/LICENSE.face-api"
for s in $SAMPLES; do
    mv "$tmp/x/package/demo/$s.jpg" "$tmp/samples/"
done
(cd "$tmp/models" && sha256sum -- *.json *.bin LICENSE.face-api >SHA256SUMS)

# Swap the complete folders in: at every moment models/ is either the old one, absent or the new.
[ ! -e .cache/samples ] || mv .cache/samples "$tmp/old-samples"
mv "$tmp/samples" .cache/samples
[ ! -e models ] || mv models "$tmp/old-models"
mv "$tmp/models" models
echo "✓ models installed in models/ ($(echo "$NETS" | wc -w) networks), sample photos in .cache/samples/"
