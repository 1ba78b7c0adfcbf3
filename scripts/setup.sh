#!/usr/bin/env bash
# Installs what the pipeline needs on a fresh Debian machine that has only Node.js and npm:
#   - Deno, from the npm package `deno` (pinned), into .tools/ (nothing global);
#   - the npm packages of deno.json, into node_modules/ (from deno.lock);
#   - system packages: ffmpeg and redis-server always; the GStreamer RTSP server for the demo camera and tests;
#     Ceph's radosgw (a real S3), Debian's Python packages that MSight's nodes import (interop tests) and
#     nats-server (the NATS back end) for the tests.
# Usage: scripts/setup.sh [run|demo|test|build]   (what is installed depends on the purpose; default: run;
#        build: Deno and the npm packages only, for `deno task compile` in the Dockerfiles' build stage)
# Each missing thing is installed once; a machine that already has it is left alone. Where installing is not
# possible (not root and no password-less sudo, no apt), it prints one line saying what to install and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
purpose=${1:-run}
say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Deno --------------------------------------------------------------------------------------------------------
DENO=.tools/node_modules/.bin/deno
if [ ! -x "$DENO" ] || ! "$DENO" --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; then
  command -v npm >/dev/null || die "npm is missing: install Node.js and npm (apt-get install nodejs npm), then retry"
  say "installing Deno $DENO_VERSION from npm into .tools/"
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2 ||
    die "npm install deno@$DENO_VERSION failed: check access to the npm registry"
  # npm 11 may skip install scripts; the package ships its binary without them, but check it runs.
  "$DENO" --version >/dev/null 2>&1 || die "the deno binary from npm does not run on this machine ($(uname -m))"
fi

# --- npm packages of deno.json -----------------------------------------------------------------------------------
if [ ! -d node_modules/.deno ] || [ deno.lock -nt node_modules/.deno ]; then
  say "installing the npm packages of deno.json"
  "$DENO" install --frozen >&2 || die "deno install failed: check access to the npm registry"
  touch node_modules/.deno
fi

[ "$purpose" != build ] || exit 0

# --- system packages ---------------------------------------------------------------------------------------------
# By profile, through scripts/image-install.sh: the same steps build the Docker images, so CI runs them too.
need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(runtime)
command -v redis-server >/dev/null || need+=(redis)
if [ "$purpose" = demo ] || [ "$purpose" = test ]; then
  if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' 2>/dev/null ||
    [ ! -d /usr/share/doc/gstreamer1.0-plugins-ugly ]; then
    need+=(camera)
  fi
fi
if [ "$purpose" = test ]; then
  for b in radosgw radosgw-admin ceph-mon ceph-osd ceph; do
    command -v "$b" >/dev/null || { need+=(s3); break; }
  done
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || need+=(bus)
  [ -x /usr/bin/chromium ] || need+=(browser)
  /usr/bin/python3 -c 'import av, cv2, numpy, msgpack, redis, yaml, imageio, tabulate, boto3, websockets, zstandard' \
    2>/dev/null || need+=(msight)
fi

if [ ${#need[@]} -gt 0 ]; then
  scripts/image-install.sh "${need[@]}" || die "could not install the system packages of: ${need[*]} (see above)"
fi
