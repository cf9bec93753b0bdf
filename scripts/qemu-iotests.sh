#!/bin/sh
# Runs QEMU's own qemu-iotests with vdisk standing in for qemu-img and qemu-io.
#
# usage: scripts/qemu-iotests.sh IOTESTS_DIR [check arguments...]
#   e.g. scripts/qemu-iotests.sh /tmp/qemu-7.2.0/tests/qemu-iotests -qcow2 290 292 097
#
# IOTESTS_DIR is tests/qemu-iotests of a QEMU source tree of the version vdisk follows (7.2):
#   cd /tmp && apt-get source --download-only qemu   # needs a deb-src line
#   tar -xJf qemu_7.2*.orig.tar.xz --wildcards '*/tests/qemu-iotests/*'
# Build vdisk first (npm run build): the wrappers run dist/cli/main.js. Only tests that use
# qemu-img and qemu-io make sense: there is no qemu-system here, and the stand-in the harness
# needs at start-up (it asks for `-machine help`) refuses everything else. qemu-nbd is the real
# one. The check script writes its scratch files under IOTESTS_DIR/scratch.
set -eu
if [ $# -lt 1 ] || [ ! -x "$1/check" ]; then
  echo "usage: $0 IOTESTS_DIR [check arguments...] (IOTESTS_DIR/check must exist)" >&2
  exit 2
fi
iotests=$(cd "$1" && pwd)
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
main="$repo/dist/cli/main.js"
if [ ! -f "$main" ]; then
  echo "$main is missing: run npm run build first" >&2
  exit 2
fi
bin=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-iotests.XXXXXX")
trap 'rm -rf "$bin"' EXIT
printf '#!/bin/sh\nVDISK_PROGNAME=qemu-img exec node "%s" "$@"\n' "$main" >"$bin/qemu-img"
printf '#!/bin/sh\nVDISK_PROGNAME=qemu-io exec node "%s" io "$@"\n' "$main" >"$bin/qemu-io"
cat >"$bin/qemu-system" <<'EOF'
#!/bin/sh
case "$*" in
  *"-machine help"*) printf 'Supported machines are:\npc (default)\n' ;;
  *) echo "vdisk qemu-iotests: no qemu-system here (asked: $*)" >&2; exit 1 ;;
esac
EOF
chmod +x "$bin/qemu-img" "$bin/qemu-io" "$bin/qemu-system"
cd "$iotests"
QEMU_IMG_PROG="$bin/qemu-img" QEMU_IO_PROG="$bin/qemu-io" \
  QEMU_PROG="$bin/qemu-system" QSD_PROG="$bin/qemu-system" \
  QEMU_NBD_PROG="${QEMU_NBD_PROG:-$(command -v qemu-nbd)}" \
  python3 ./check "$@"
