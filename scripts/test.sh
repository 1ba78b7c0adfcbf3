#!/usr/bin/env bash
# Runs the whole test suite against real servers (Redis, ffmpeg, GStreamer RTSP, Ceph radosgw) and ends with the
# line `N passed, M failed` (CI reads that line, not deno's own summary). Extra arguments go to `deno test`
# (e.g. a file or `--filter`). Exit status: 0 only when every test passed.
set -uo pipefail
cd "$(dirname "$0")/.."
DENO=.tools/node_modules/.bin/deno
mkdir -p .cache
junit=.cache/junit.xml
rm -f "$junit"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/)
"$DENO" test -A --no-prompt --junit-path="$junit" "${files[@]}"
status=$?
if [ -s "$junit" ]; then
  # Count top-level test cases (steps are reported inside their parent); a case with <failure> failed.
  read -r passed failed < <(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
p = f = 0
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        f += 1
    elif case.find("skipped") is None:
        p += 1
print(p, f)
PY
)
else
  passed=0
  failed=1
  echo "deno test produced no report (exit $status): counting the run as failed" >&2
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
