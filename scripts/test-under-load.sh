#!/usr/bin/env bash
# Runs the test suite (scripts/test.sh) several times in a row in a fresh clone of the committed HEAD while every
# core is kept busy by a background load, and prints one result line per run: the suite must hold on a loaded
# machine, not only on a quiet one. The load is `stress-ng --cpu N` where Debian's stress-ng is installed, else N
# endless ffmpeg libx264 encodes (one thread each); N is the number of cores.
#   scripts/test-under-load.sh                      # the whole suite, 3 runs (about 3 x 10 min on 2 cores)
#   RUNS=1 scripts/test-under-load.sh test/runtime/ # a subset, one run
# Environment: RUNS (3), LOAD_JOBS (nproc), KEEP=1 keeps the clone and logs. Exit 0 only when every run passed.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
jobs=${LOAD_JOBS:-$(nproc)}
work=$(mktemp -d "${TMPDIR:-/tmp}/msight-under-load.XXXXXX")
load_pids=()

cleanup() {
  for p in "${load_pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null; done
  # Nodes a test started in a session of their own (the signal tests) are outside the suite's group: whatever
  # still runs from the clone goes too.
  pkill -KILL -f "$work/clone/" 2>/dev/null
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git clone --quiet "$src" "$work/clone" || { echo "test-under-load: cannot clone $src" >&2; exit 2; }
# Deno and the npm packages are not in git: the clone uses this checkout's.
ln -s "$src/.tools" "$work/clone/.tools"
commit=$(git -C "$work/clone" rev-parse --short HEAD)

# Each load process leads its own session (setsid), so the cleanup can end it with its whole group.
if command -v stress-ng >/dev/null; then
  setsid stress-ng --cpu "$jobs" --quiet &
  load_pids+=($!)
  load="stress-ng --cpu $jobs"
else
  for ((i = 0; i < jobs; i++)); do
    setsid ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30 \
      -c:v libx264 -preset medium -threads 1 -f null - &
    load_pids+=($!)
  done
  load="$jobs ffmpeg libx264 encodes"
fi
sleep 2
for p in "${load_pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "test-under-load: the background load did not start" >&2; exit 2; }
done
echo "test-under-load: commit $commit, $runs run(s) of scripts/test.sh ${*:-test/} under $load"

results=()
failed=0
for ((r = 1; r <= runs; r++)); do
  log="$work/run$r.log"
  t0=$(date +%s)
  # In the background and waited for, so a SIGTERM to this script alone runs the cleanup at once (bash defers a
  # trap until a foreground command ends); the suite leads its own group so the cleanup can end it too.
  (cd "$work/clone" && exec setsid bash scripts/test.sh "$@") >"$log" 2>&1 &
  suite=$!
  load_pids+=("$suite")
  wait "$suite"
  rc=$?
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  line="run $r: ${summary:-no summary} (exit $rc, $(($(date +%s) - t0)) s)"
  [ "$rc" -eq 0 ] || {
    failed=1
    # Name the failures, so the note can say what broke.
    line+=$'\n'$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E ' => \./test/' | sort -u | sed 's/^/    /')
  }
  results+=("$line")
  echo "$line"
done

echo "test-under-load: results (commit $commit, under $load):"
printf '  %s\n' "${results[@]}"
exit "$failed"
