#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine without network into one folder (default .gpu-bundle/,
# git-ignored), under 64 MB: Deno (xz), the app (bin/, src/, nodes/, the check's scripts, a deno.json with only the
# npm packages the RTSP node and the aggregator load, and those packages from Deno's cache), redis-server with its
# libraries and loader (it runs on any x86_64 Linux), the two camera clips, and ffmpeg when FFMPEG_STATIC names a
# static build with NVDEC (see README, "GPU"; scripts/gpu-check/ffmpeg_configure.sh is how one was built). Run it on
# Debian with the project set up (scripts/setup.sh); copy the folder over and run its gpu-check.sh there.
#   scripts/gpu-bundle.sh [DEST]        env: FFMPEG_STATIC=/path/to/ffmpeg (optional), DENO (default .tools' Deno)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.gpu-bundle}
deno=${DENO:-$root/.tools/node_modules/.bin/deno}
[ -x "$deno" ] || { echo "gpu-bundle: Deno not found at $deno (run scripts/setup.sh)" >&2; exit 2; }
for t in python3 xz tar ldd redis-server ffmpeg; do
  command -v "$t" >/dev/null || { echo "gpu-bundle: $t is needed to build the bundle" >&2; exit 2; }
done
denodir=$("$deno" info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["denoDir"])')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
app=$stage/app
mkdir -p "$app/scripts" "$app/tools/bin" "$app/tools/lib" "$app/tools/libexec" "$dest"
cp -r "$root/bin" "$root/src" "$root/nodes" "$app/"
cp -r "$root/scripts/gpu-check" "$root/scripts/gpu-check.sh" "$app/scripts/"

# deno.json with the four npm packages the nodes load, no node_modules folder (Deno's own cache, carried), and the
# closure of those packages in that cache, from deno.lock.
python3 - "$root" "$app" "$denodir" <<'PY'
import json, os, shutil, sys
root, app, denodir = sys.argv[1:]
cfg = json.load(open(os.path.join(root, "deno.json")))
keep = ["ioredis", "@msgpack/msgpack", "yaml", "mediabunny"]
cfg["imports"] = {k: v for k, v in cfg["imports"].items() if k in keep}
cfg["nodeModulesDir"] = "none"
json.dump(cfg, open(os.path.join(app, "deno.json"), "w"), indent=2)
lock = json.load(open(os.path.join(root, "deno.lock")))
npm = lock["npm"]
# deno.lock (v5): specifiers {"npm:ioredis@5.9.2": "5.9.2"}; npm {"ioredis@5.9.2": {"dependencies": [names, or
# name@version when several versions are locked]}}.
todo = []
for k in keep:
    spec = cfg["imports"][k]
    name = spec.removeprefix("npm:").rsplit("@", 1)[0]
    todo.append(f"{name}@{lock['specifiers'][spec]}")
seen = set()
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    for d in npm[p].get("dependencies", []):
        todo.append(d if "@" in d[1:] else next(x for x in npm if x.rsplit("@", 1)[0] == d))
shutil.copy(os.path.join(root, "deno.lock"), os.path.join(app, "deno.lock"))
for p in sorted(seen):
    name, ver = p.rsplit("@", 1)
    src = os.path.join(denodir, "npm", "registry.npmjs.org", name)
    dst = os.path.join(app, "denodir", "npm", "registry.npmjs.org", name)
    os.makedirs(dst, exist_ok=True)
    shutil.copytree(os.path.join(src, ver), os.path.join(dst, ver))
    shutil.copy(os.path.join(src, "registry.json"), dst)
print("npm packages:", " ".join(sorted(seen)))
PY

# redis-server with its libraries and the loader: started through that loader, it needs nothing from the machine.
real=$(readlink -f "$(command -v redis-server)")
cp "$real" "$app/tools/libexec/redis-server"
ldd "$real" | awk '/=> \// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | while read -r lib; do
  cp -L "$lib" "$app/tools/lib/"
done
cat >"$app/tools/bin/redis-server" <<'EOF'
#!/bin/sh
d=$(dirname "$(readlink -f "$0")")/..
exec "$d/lib/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/libexec/redis-server" "$@"
EOF
chmod +x "$app/tools/bin/redis-server"

if [ -n "${FFMPEG_STATIC:-}" ]; then
  cp "$FFMPEG_STATIC" "$app/tools/bin/ffmpeg"
  echo "ffmpeg: $FFMPEG_STATIC ($(ldd "$FFMPEG_STATIC" 2>&1 | grep -c '=>') shared libraries)"
else
  echo "ffmpeg: none bundled (FFMPEG_STATIC unset): the GPU machine must have an ffmpeg with NVDEC on PATH"
fi

"$root/scripts/gpu-check/make_clips.sh" "$dest/clips"
cp "$root/test/fixtures/mcity-gs-ne/LICENSE" "$dest/clips/LICENSE-camA-frames"
# Deno compresses slowly (~2 min): an existing deno.xz newer than the binary is kept.
if [ ! "$dest/deno.xz" -nt "$(readlink -f "$deno")" ]; then
  xz -T0 -6 -c "$(readlink -f "$deno")" >"$dest/deno.xz.new" && mv "$dest/deno.xz.new" "$dest/deno.xz"
fi
tar -C "$stage" -cf - app | xz -T0 -6 >"$dest/app.tar.xz"
cp "$root/scripts/gpu-check.sh" "$dest/gpu-check.sh"
total=$(du -sb "$dest" | cut -f1)
du -sh "$dest"/* | sed 's/^/  /'
echo "bundle: $dest, $((total / 1048576)) MB"
if [ "$total" -gt $((64 * 1048576)) ]; then echo "gpu-bundle: over 64 MB" >&2; exit 1; fi
