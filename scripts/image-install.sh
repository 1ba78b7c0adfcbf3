#!/usr/bin/env bash
# The system packages of msight-edge, by profile, and the one place that installs them: the Dockerfiles run it to
# build their images, and scripts/setup.sh (so `./edge setup|test|demo`, so CI) runs it to install what a machine
# lacks. Docker cannot run on our build machines; CI still exercises these steps: setup.sh installs through this
# script, and test/packaging/image_test.ts runs `--check` on every profile the images use, which asks apt whether
# each package has an install candidate in the configured Debian release (the images' release: bookworm).
#
#   scripts/image-install.sh [--clean] PROFILE...   install (root, or password-less sudo); --clean empties apt's
#                                                    lists afterwards (smaller image layers)
#   scripts/image-install.sh --check PROFILE...     verify every package name has an apt candidate; install nothing
#   scripts/image-install.sh --list PROFILE...      print the package names, one per line
#
# Profiles: runtime (the nodes: ffmpeg with ffprobe, CA certificates, tini as PID 1, curl for the HEALTHCHECK),
#           redis, camera (the GStreamer RTSP server of tools/rtsp_demo_server.py), s3 (Ceph radosgw, tests),
#           browser (Debian's Chromium, which the web console's tests drive headless; tests only, never in an image).
set -euo pipefail

say() { printf '[image-install] %s\n' "$*" >&2; }
die() { printf 'image-install: error: %s\n' "$*" >&2; exit 1; }

packages_of() { # prints the packages of profile $1, or nothing for an unknown profile
  case "$1" in
    runtime) echo ffmpeg ca-certificates tini curl ;;
    redis) echo redis-server ;;
    bus) echo nats-server ;; # the NATS back end's tests (MSight's RedisCluster client: python3-redis, in msight)
    camera) echo python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
      gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad ;;
    s3) echo radosgw ceph-mon ceph-osd ceph-mgr ceph-common ;;
    browser) echo chromium ;;
    # MSight_Core's Python nodes, run beside ours by the interop tests (test/peers/; its other imports are stand-ins).
    msight) echo python3-av python3-opencv python3-numpy python3-msgpack python3-redis python3-yaml python3-imageio \
      python3-tabulate python3-boto3 python3-websockets python3-zstandard ;;
  esac
}

mode=install
clean=0
profiles=()
for a in "$@"; do
  case "$a" in
    --check) mode=check ;;
    --list) mode=list ;;
    --clean) clean=1 ;;
    -*) die "unknown option $a" ;;
    *) profiles+=("$a") ;;
  esac
done
[ ${#profiles[@]} -gt 0 ] || die "no profile given: usage: scripts/image-install.sh [--check|--list|--clean] PROFILE..."
pkgs=()
for p in "${profiles[@]}"; do
  read -r -a more <<<"$(packages_of "$p")"
  [ ${#more[@]} -gt 0 ] || die "unknown profile $p: expected runtime, redis, camera, s3, browser, msight or bus"
  pkgs+=("${more[@]}")
done

if [ "$mode" = list ]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

command -v apt-get >/dev/null || die "no apt-get: install ${pkgs[*]} with your package manager"
if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
  sudo=(none)
fi
export DEBIAN_FRONTEND=noninteractive

if [ "$mode" = check ]; then
  # Without package lists apt knows only what is installed: fetch them once (as a fresh image build does).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null && [ "${sudo[0]:-}" != none ]; then
    say "no apt package lists yet: apt-get update"
    "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed: check access to the Debian mirrors"
  fi
  # One apt-cache call for all (each call loads the whole cache): "NAME:" then "  Candidate: VERSION" per package
  # it knows; an unknown name prints nothing.
  declare -A candidate=()
  while read -r name version; do candidate[$name]=$version; done < <(
    apt-cache policy "${pkgs[@]}" 2>/dev/null | awk '/^[^ ].*:$/ { name = substr($0, 1, length($0) - 1) }
      /^ *Candidate:/ { print name, $2 }'
  )
  missing=()
  for p in "${pkgs[@]}"; do
    [ -n "${candidate[$p]:-}" ] && [ "${candidate[$p]}" != "(none)" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] || die "no install candidate for: ${missing[*]} (profiles ${profiles[*]})"
  echo "image-install: ok: ${#pkgs[@]} packages of ${profiles[*]} have install candidates ($(. /etc/os-release && echo "$PRETTY_NAME"))"
  exit 0
fi

[ "${sudo[0]:-}" != none ] || die "missing system packages and no root to install them: run as root: apt-get install -y ${pkgs[*]}"
say "installing system packages: ${pkgs[*]}"
"${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed: check access to the Debian mirrors"
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
if [ "$clean" = 1 ]; then
  "${sudo[@]}" apt-get clean
  "${sudo[@]}" rm -rf /var/lib/apt/lists/*
fi
