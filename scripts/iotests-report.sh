#!/bin/sh
# Runs QEMU 7.2's bash qemu-iotests that need only qemu-img and qemu-io, per format, with vdisk
# (default) or the real tools standing in, and prints a pass table.
#
# usage: scripts/iotests-report.sh [--real] IOTESTS_DIR OUTDIR [FORMAT...]
#        scripts/iotests-report.sh --compare REAL_OUTDIR VDISK_OUTDIR
#   FORMAT: qcow2 qcow qed vhdx vpc vdi vmdk parallels raw (all by default)
# Results land in OUTDIR/FORMAT.log (check's own output) and OUTDIR/FORMAT/ (scratch and
# *.out.bad files). The table is also written to OUTDIR/table.txt. Tests are selected by content:
# bash tests that never start qemu-system, qemu-storage-daemon or qemu-nbd. Runs one format at a
# time (check -j1) so it stays light on a shared machine. VDISK_CLI=path/to/dist/cli/main.js runs
# another build of vdisk (e.g. main's, for a before/after comparison).
set -eu
if [ "${1:-}" = "--compare" ]; then
  # --compare REAL_OUTDIR VDISK_OUTDIR: (test, format) pairs that pass with the real tools, and
  # how many of them pass with vdisk, per format (tests that have not finished in both are left out).
  [ $# -eq 3 ] || { echo "usage: $0 --compare REAL_OUTDIR VDISK_OUTDIR" >&2; exit 2; }
  printf '%-10s %6s %6s  %s\n' format real vdisk "failing with vdisk (passing with real)"
  for r in "$2"/*.log; do
    fmt=$(basename "$r" .log)
    [ -f "$3/$fmt.log" ] || continue
    res() { tr '\r' '\n' <"$1" | grep -oE '^[^ ]+ +(pass|fail|not run) +\[' | sed -E 's/ +\[$//; s/ +/ /'; }
    res "$r" | grep ' pass$' | cut -d' ' -f1 | sort >"$3/$fmt.realpass"
    res "$3/$fmt.log" | grep -E ' (pass|fail)$' | sort >"$3/$fmt.done"
    rp=$(join "$3/$fmt.realpass" "$3/$fmt.done" | wc -l)
    vp=$(join "$3/$fmt.realpass" "$3/$fmt.done" | grep -c ' pass$' || true)
    fails=$(join "$3/$fmt.realpass" "$3/$fmt.done" | grep ' fail$' | cut -d' ' -f1 | tr '\n' ' ')
    printf '%-10s %6s %6s  %s\n' "$fmt" "$rp" "$vp" "$fails"
  done
  exit 0
fi
real=0
if [ "${1:-}" = "--real" ]; then real=1; shift; fi
if [ $# -lt 2 ] || [ ! -x "$1/check" ]; then
  echo "usage: $0 [--real] IOTESTS_DIR OUTDIR [FORMAT...]" >&2
  exit 2
fi
iotests=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
shift 2
formats=${*:-"qcow2 qcow qed vhdx vpc vdi vmdk parallels raw"}
repo=$(cd "$(dirname "$0")/.." && pwd)

tests=""
cd "$iotests"
for f in [0-9][0-9][0-9] tests/*; do
  case $f in *.out | *.py) continue ;; esac
  [ -f "$f" ] || continue
  head -1 "$f" | grep -q bash || continue
  if grep -qE '_launch_qemu|\$QEMU_PROG|_send_qemu_cmd|\$\{?QEMU\}?( |$|")|_run_qemu|^ *run_qemu|run_qemu\(\)|\$QSD|QEMU_STORAGE|_qemu_comm|qemu_comm_method|_launch_qsd|\$QEMU_NBD|_qemu_nbd|nbd_server|_filter_nbd|FUSE|fuse' "$f"; then
    continue
  fi
  tests="$tests $f"
done

bin=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-iotests.XXXXXX")
trap 'rm -rf "$bin"' EXIT
if [ $real = 1 ]; then
  img=$(command -v qemu-img)
  io=$(command -v qemu-io)
else
  main="${VDISK_CLI:-$repo/dist/cli/main.js}"
  [ -f "$main" ] || { echo "$main is missing: run npm run build first" >&2; exit 2; }
  printf '#!/bin/sh\nVDISK_PROGNAME=qemu-img exec node "%s" "$@"\n' "$main" >"$bin/qemu-img"
  printf '#!/bin/sh\nVDISK_PROGNAME=qemu-io exec node "%s" io "$@"\n' "$main" >"$bin/qemu-io"
  chmod +x "$bin/qemu-img" "$bin/qemu-io"
  img="$bin/qemu-img"
  io="$bin/qemu-io"
fi
cat >"$bin/qemu-system" <<'STUB'
#!/bin/sh
case "$*" in
  *"-machine help"*) printf 'Supported machines are:\npc (default)\n' ;;
  *) echo "qemu-iotests stand-in: no qemu-system here (asked: $*)" >&2; exit 1 ;;
esac
STUB
chmod +x "$bin/qemu-system"

[ "${IOTESTS_TABLE_ONLY:-0}" = 1 ] ||
for fmt in $formats; do
  rm -rf "${out:?}/$fmt"
  mkdir -p "$out/$fmt"
  # shellcheck disable=SC2086
  TEST_DIR="$out/$fmt" SOCK_DIR="$out/$fmt" QEMU_IMG_PROG="$img" QEMU_IO_PROG="$io" \
    QEMU_PROG="$bin/qemu-system" QSD_PROG="$bin/qemu-system" QEMU_NBD_PROG="$(command -v qemu-nbd)" \
    timeout 3000 python3 ./check --color off "-$fmt" $tests >"$out/$fmt.log" 2>&1 || true
done

{
  printf '%-10s %5s %5s %7s\n' format pass fail notrun
  for fmt in $formats; do
    [ -f "$out/$fmt.log" ] || continue
    # check redraws a line per test: keep the last "NAME RESULT [" of each line.
    tr '\r' '\n' <"$out/$fmt.log" | grep -oE '[^ ]+ +(pass|fail|not run) +\[' |
      sed -E 's/ +\[$//; s/ +/ /' | sed -E 's/^([^ ]+) (.*)$/\1 \2/' >"$out/$fmt.results"
    p=$(grep -c ' pass$' "$out/$fmt.results" || true)
    f=$(grep -c ' fail$' "$out/$fmt.results" || true)
    n=$(grep -c ' not run$' "$out/$fmt.results" || true)
    printf '%-10s %5s %5s %7s\n' "$fmt" "$p" "$f" "$n"
  done
} | tee "$out/table.txt"
