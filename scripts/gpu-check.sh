#!/usr/bin/env bash
# The GPU check of the RTSP node: CUDA probe, the node with -g 0 and -g -1 side by side per camera (frames, CPU per
# frame, RSS), JPEG equality of the two, NVENC through the aggregator, nvidia-smi's decoder use; one table.
#
#   scripts/gpu-check.sh [--here] [--quick] [--out DIR] [--gpu N]
#
# From a bundle (made by scripts/gpu-bundle.sh on a Debian machine, copied to a GPU machine without network):
#   .gpu-bundle/gpu-check.sh            unpacks Deno, the app, redis-server (and a static ffmpeg, if bundled) to
#                                       $WORK (/tmp/msight-gpu-check) and runs there; needs only bash, python3, libc.
# From this checkout (--here): the Deno in .tools, ffmpeg and redis-server from PATH, clips made with ffmpeg.
# --quick: one camera, 3 s warm-up, 8 s window (what the test suite runs on a machine without a GPU).
# The table goes to stdout and $OUT/gpu-check.txt (OUT: --out, default /tmp/msight-gpu-check-out), logs to $OUT/logs.
# Without a GPU every GPU row says "no GPU" and the -g 0 node falls back to the CPU: the check still runs.
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
mode=bundle
quick=0
out=/tmp/msight-gpu-check-out
gpu=0
while [ $# -gt 0 ]; do
  case $1 in
    --here) mode=here ;;
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    --gpu) gpu=${2:?--gpu needs a device index}; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (expected --here, --quick, --out DIR, --gpu N)" >&2; exit 2 ;;
  esac
  shift
done
command -v python3 >/dev/null || { echo "gpu-check: python3 is needed (stdlib only)" >&2; exit 2; }
mkdir -p "$out"

unxz_to() { # FILE.xz DEST: xz if present, else Python's lzma
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else
    python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"
  fi
}

if [ $mode = here ]; then
  app=$(dirname "$here")
  deno=${DENO:-$app/.tools/node_modules/.bin/deno}
  ffmpeg=$(command -v ffmpeg || true)
  redis=$(command -v redis-server || true)
  clips=$out/clips
  [ -n "$ffmpeg" ] || { echo "gpu-check: ffmpeg not found on PATH" >&2; exit 2; }
  "$app/scripts/gpu-check/make_clips.sh" "$clips" "$ffmpeg"
else
  [ -f "$here/app.tar.xz" ] || {
    echo "gpu-check: $here holds no bundle (app.tar.xz): run scripts/gpu-bundle.sh, or use --here in a checkout" >&2
    exit 2
  }
  work=${WORK:-/tmp/msight-gpu-check}
  rm -rf "$work" && mkdir -p "$work"
  unxz_to "$here/deno.xz" "$work/deno" && chmod +x "$work/deno"
  unxz_to "$here/app.tar.xz" "$work/app.tar" && tar -xf "$work/app.tar" -C "$work" && rm "$work/app.tar"
  app=$work/app
  deno=$work/deno
  export DENO_DIR=$app/denodir # the npm packages, carried (the bundle's deno.json has no node_modules folder)
  clips=$here/clips
  export PATH="$work/app/tools/bin:$PATH"
  ffmpeg=$(command -v ffmpeg || true)
  redis=$(command -v redis-server || true)
  [ -n "$ffmpeg" ] || {
    echo "gpu-check: no ffmpeg: the bundle has none and none is installed (see README, GPU check)" >&2
    exit 2
  }
fi
[ -x "$deno" ] || { echo "gpu-check: Deno not found at $deno" >&2; exit 2; }
[ -n "$redis" ] || { echo "gpu-check: redis-server not found" >&2; exit 2; }
clipargs=(--clip "A=$clips/camA_960p10.mp4")
[ $quick = 1 ] || clipargs+=(--clip "B=$clips/camB_720p25.mp4")
timing=(--warmup 20 --window 40)
[ $quick = 0 ] || timing=(--warmup 3 --window 8)
exec python3 "$app/scripts/gpu-check/check.py" --app "$app" --deno "$deno" --ffmpeg "$ffmpeg" --redis "$redis" \
  "${clipargs[@]}" "${timing[@]}" --gpu "$gpu" --out "$out"
