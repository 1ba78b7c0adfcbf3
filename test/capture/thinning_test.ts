/**
 * The RTSP node's `--max-fps` (ffmpeg's `select` filter from `thinningFilter`), run by the real ffmpeg on generated
 * streams of known timestamps: a faster camera keeps exactly --max-fps frames a second, one at or below it keeps
 * every frame however its timestamps jitter. Then what `deno task up` pairs: --max-fps equal to the aggregator's
 * --fps. The thinned frames, stamped by the capture clock from jittery arrival times, go through the aggregator's
 * frame choice and its MP4 grid: every frame is kept (none thinned, late or duplicate) and no 1/fps slot of a
 * segment is left empty.
 */
import assert from "node:assert/strict";
import { thinningFilter } from "../../src/capture/ffmpeg_args.ts";
import { FrameClock } from "../../src/capture/clock.ts";
import { Segmenter, type SegmentEvent } from "../../src/aggregate/segmenter.ts";
import { mediaSlot } from "../../src/aggregate/segment_builder.ts";
import { seededRandom } from "../helpers/random.ts";

interface Source {
  /** Frames per second of the camera. */
  rate: number;
  seconds: number;
  /** Each frame's timestamp moved by up to ± this many seconds (ffmpeg's own seeded random). */
  jitterS?: number;
  /** From this frame on the stream's timestamps start over from 0 (a camera that resets its clock). */
  resetAt?: number;
}

/** The stream times (s) of the frames that `select` keeps at `maxFps` (all of them when `maxFps` is 0). */
async function selected(src: Source, maxFps: number): Promise<number[]> {
  const n = src.resetAt === undefined ? "N" : `if(lt(N,${src.resetAt}),N,N-${src.resetAt})`;
  const jitter = src.jitterS ? `+(random(0)-0.5)*${2 * src.jitterS}` : "";
  const graph = [
    `testsrc=d=${src.seconds}:r=${src.rate}:s=32x32`,
    "settb=1/90000",
    `setpts='(${n}/${src.rate}${jitter})/TB'`,
    ...(maxFps > 0 ? [thinningFilter(maxFps)] : []),
  ].join(",");
  const out = await new Deno.Command("ffprobe", {
    args: ["-v", "error", "-f", "lavfi", graph, "-show_entries", "frame=pts_time", "-of", "csv=p=0"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n").map(Number);
}

const gaps = (t: number[]) => t.slice(1).map((x, i) => x - t[i]);

Deno.test("--max-fps 10: a faster camera (12.5, 20, 25, 30, 50 fps) keeps exactly 10 frames a second, none doubled", async () => {
  for (const rate of [12.5, 20, 25, 30, 50]) {
    const t = await selected({ rate, seconds: 20 }, 10);
    // 200 frames in 20 s, plus the first one of the stream (it opens a slot of its own).
    assert.ok(t.length >= 200 && t.length <= 201, `${rate} fps: ${t.length} frames in 20 s`);
    assert.ok(gaps(t).every((g) => g > 0.05), `${rate} fps: gaps ${gaps(t).map((g) => g.toFixed(3))}`);
    // Every 2 s of the stream hold 20 frames, ±1: no catching up, no stretch without frames.
    for (let from = 1; from + 2 <= 20; from += 2) {
      const n = t.filter((x) => x >= from && x < from + 2).length;
      assert.ok(n >= 19 && n <= 21, `${rate} fps: ${n} frames in [${from}, ${from + 2}) s`);
    }
  }
});

Deno.test("--max-fps 10: a camera at or below 10 fps keeps every frame, however its timestamps jitter", async () => {
  const cases: Source[] = [
    { rate: 10, seconds: 30 },
    { rate: 10, seconds: 30, jitterS: 0.02 }, // ±20 ms around an exact 10 fps: the old slot grid lost 22% of these
    { rate: 9.9, seconds: 30, jitterS: 0.004 }, // drifting across the slots' edges
    { rate: 5, seconds: 30, jitterS: 0.04 },
  ];
  for (const src of cases) {
    const all = await selected(src, 0);
    const kept = await selected(src, 10);
    assert.deepEqual(
      kept,
      all,
      `${src.rate} fps ±${src.jitterS ?? 0} s: ${kept.length} of ${all.length} kept`,
    );
  }
});

Deno.test("--max-fps 10: a stream whose time starts over is not held back", async () => {
  // 25 fps, the camera's clock restarting at 0 after 4 s: the frames after it are thinned as before, not held until
  // the stream time passes 4 s again.
  const t = await selected({ rate: 25, seconds: 10, resetAt: 100 }, 10);
  assert.ok(t.length >= 99 && t.length <= 102, `${t.length} frames in 10 s`);
  const after = t.slice(t.findIndex((x, i) => i > 0 && x < t[i - 1]));
  assert.ok(after[0] < 0.05 && after.length >= 59, `after the reset: ${after.slice(0, 5)} (${after.length})`);
});

/**
 * The thinned frames as the aggregator gets them: stamped by the RTSP node's clock from arrival times that lag the
 * stream by `baseS` plus a random delay (a loaded machine), with the first frames of a session later still (ffmpeg
 * starting) and a stall now and then (the frames queue and arrive together).
 */
function captureTimes(pts: number[], seed: number): number[] {
  const random = seededRandom(seed);
  const clock = new FrameClock();
  const t0 = 1_770_000_000;
  let arrival = 0;
  return pts.map((p, i) => {
    const startUp = i < 5 ? 0.4 - 0.08 * i : 0;
    const stall = i % 173 === 0 ? 0.6 : 0;
    arrival = Math.max(arrival, t0 + p + 0.05 + random() * 0.15 + startUp + stall);
    return clock.stamp(p, arrival);
  });
}

/** The segments' frames and the aggregator's drops, from the segmenter's events. */
function aggregate(times: number[], fps: number, bufferSize: number) {
  const seg = new Segmenter({ fps, bufferSize, overlapSize: 0, maxIdleS: 5, gapS: 3 });
  const events: SegmentEvent[] = [];
  times.forEach((t, i) =>
    events.push(...seg.push({
      sensor: "cam",
      frameId: BigInt(i + 1),
      captureTs: t,
      width: 32,
      height: 32,
      format: "jpeg",
      data: new Uint8Array(1),
    }, t * 1000 + 100))
  );
  events.push(...seg.closeAll());
  const drops = events.filter((e) => e.kind === "drop");
  const segments: number[][] = [];
  for (const e of events) {
    if (e.kind === "open") segments.push([]);
    if (e.kind === "frame") segments.at(-1)!.push(e.frame.captureTs);
  }
  return { drops, segments };
}

Deno.test("--max-fps = --fps (as `up` sets it): the aggregator keeps every thinned frame, and no 1/fps slot is empty", async () => {
  const sources: Source[] = [
    { rate: 25, seconds: 120 },
    { rate: 30, seconds: 60 },
    { rate: 12.5, seconds: 60 },
    { rate: 10, seconds: 60, jitterS: 0.02 },
    { rate: 25, seconds: 60, jitterS: 0.005 },
  ];
  for (const [i, src] of sources.entries()) {
    const pts = await selected(src, 10);
    const times = captureTimes(pts, 11 + i);
    const { drops, segments } = aggregate(times, 10, 100);
    const what = `${src.rate} fps ±${src.jitterS ?? 0} s`;
    assert.deepEqual(drops.map((d) => d.kind === "drop" && d.reason), [], `${what}: frames dropped`);
    assert.equal(segments.flat().length, pts.length, `${what}: every frame in a segment`);
    for (const s of segments) {
      // The MP4 grid of segment_builder: slot k is shown at k/fps; every slot from 0 to the last has its frame.
      let last = -1;
      const slots = s.map((t) => (last = mediaSlot(t - s[0], 10, last)));
      assert.deepEqual(slots, slots.map((_, k) => k), `${what}: slots ${slots.join(" ")}`);
    }
  }
});
