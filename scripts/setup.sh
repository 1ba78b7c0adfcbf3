#!/usr/bin/env bash
# Installs what the pipeline needs on a fresh Debian machine that has only Node.js and npm:
#   - Deno, from the npm package `deno` (pinned), into .tools/ (nothing global);
#   - the npm packages of deno.json, into node_modules/ (from deno.lock);
#   - system packages: ffmpeg and redis-server always; the GStreamer RTSP server for the demo camera and tests;
#     Ceph's radosgw (a real S3) for the tests.
# Usage: scripts/setup.sh [run|demo|test]   (what is installed depends on the purpose; default: run)
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

# --- system packages ---------------------------------------------------------------------------------------------
need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v redis-server >/dev/null || need+=(redis-server)
if [ "$purpose" = demo ] || [ "$purpose" = test ]; then
  if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' 2>/dev/null ||
    [ ! -d /usr/share/doc/gstreamer1.0-plugins-ugly ]; then
    need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad)
  fi
fi
if [ "$purpose" = test ]; then
  for b in radosgw radosgw-admin ceph-mon ceph-osd ceph; do
    command -v "$b" >/dev/null || { need+=(radosgw ceph-mon ceph-osd ceph-mgr ceph-common); break; }
  done
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    die "missing system packages and no root to install them: run as root: apt-get install -y ${need[*]}"
  fi
  command -v apt-get >/dev/null || die "missing system packages and no apt-get: install ${need[*]} with your package manager"
  say "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed: check access to the Debian mirrors"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
    die "apt-get install ${need[*]} failed"
fi
