#!/usr/bin/env bash
# The GPU check's two cameras as H.264 clips (limited-range yuv420p, as cameras send), made with ffmpeg/libx264:
#   camA_960p10.mp4: the Mcity fixture's 170 real frames, 1280x960 at 10 fps, a keyframe every second;
#   camB_720p25.mp4: 10 s of ffmpeg's testsrc2, 1280x720 at 25 fps, a keyframe every second.
# usage: make_clips.sh OUTDIR [FFMPEG]
set -euo pipefail
out=${1:?usage: make_clips.sh OUTDIR [FFMPEG]}
ff=${2:-ffmpeg}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
x264=(-c:v libx264 -preset veryfast -crf 26 -pix_fmt yuv420p -bf 0 -movflags +faststart)
[ -s "$out/camA_960p10.mp4" ] || "$ff" -hide_banner -loglevel error -y -framerate 10 \
  -i "$root/test/fixtures/mcity-gs-ne/frames/%04d.jpg" -vf scale=out_range=tv,format=yuv420p -g 10 "${x264[@]}" \
  "$out/camA_960p10.mp4"
[ -s "$out/camB_720p25.mp4" ] || "$ff" -hide_banner -loglevel error -y -f lavfi -i testsrc2=s=1280x720:r=25:d=10 \
  -vf format=yuv420p -g 25 "${x264[@]}" "$out/camB_720p25.mp4"
