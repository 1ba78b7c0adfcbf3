import assert from "node:assert/strict";
import {
  FrameBudget,
  runsFast,
  Segmenter,
  type SegmentEvent,
  type SegmentFrame,
} from "../../src/aggregate/segmenter.ts";

let nextId = 1n;
const frame = (sensor: string, t: number, w = 1280, h = 960): SegmentFrame => ({
  sensor,
  frameId: nextId++,
  captureTs: t,
  width: w,
  height: h,
  format: "jpeg",
  data: new Uint8Array([1]),
});

/** Runs frames through and returns the segments as lists of capture times, with their close reasons. */
function segments(
  events: SegmentEvent[],
): { sensor: string; times: number[]; reason?: string; overlap: number }[] {
  const open = new Map<string, { sensor: string; times: number[]; reason?: string; overlap: number }>();
  const done: { sensor: string; times: number[]; reason?: string; overlap: number }[] = [];
  for (const ev of events) {
    if (ev.kind === "open") open.set(ev.sensor, { sensor: ev.sensor, times: [], overlap: 0 });
    if (ev.kind === "frame") {
      const s = open.get(ev.sensor)!;
      s.times.push(ev.frame.captureTs);
      if (ev.overlap) s.overlap++;
    }
    if (ev.kind === "close") {
      const s = open.get(ev.sensor)!;
      s.reason = ev.reason;
      assert.equal(ev.frames, s.times.length);
      done.push(s);
    }
  }
  return done;
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * MSight's RTSP node stamps time.time() when PyAV hands a frame over: a camera at `rate` fps whose frames arrive
 * up to `maxDelay` s late, never closer than 24 ms. At 10 fps that gives gaps of 0.024-0.277 s.
 */
function msightTimes(n: number, rate: number, seed: number, maxDelay = 0.177): number[] {
  const r = prng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = 1764547200 + i / rate + r() * maxDelay;
    out.push(i === 0 ? t : Math.max(out[i - 1] + 0.024, t));
  }
  return out;
}

function run(seg: Segmenter, sensor: string, times: number[]): SegmentEvent[] {
  const ev: SegmentEvent[] = [];
  for (const t of times) ev.push(...seg.push(frame(sensor, t)));
  ev.push(...seg.closeAll());
  return ev;
}

/** Frames per second of capture time over a segment: (frames - 1) / span. */
const rate = (times: number[]) => (times.length - 1) / (times.at(-1)! - times[0]);
/** A segment's frames over its share of the timeline: from its first frame to the next segment's first. */
const share = (s: { times: number[] }, next: { times: number[] }) =>
  s.times.length / (next.times[0] - s.times[0]);

Deno.test("segmenter: MSight's jittery 10 fps timestamps at --fps 10: no frame lost", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const times = msightTimes(425, 10, seed);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(
      Math.min(...gaps) >= 0.0239 && Math.max(...gaps) <= 0.2771,
      "the generator gives MSight's gaps",
    );
    const seg = new Segmenter({ fps: 10, bufferSize: 50, overlapSize: 0, maxIdleS: 5, gapS: 2 });
    const ev = run(seg, "msight", times);
    assert.equal(ev.filter((e) => e.kind === "drop").length, 0, `seed ${seed}`);
    const segs = segments(ev);
    assert.deepEqual(segs.flatMap((s) => s.times), times);
    assert.deepEqual(segs.map((s) => s.times.length), [50, 50, 50, 50, 50, 50, 50, 50, 25]);
    // 50 frames span about 4.9 s, not the 5.6-6.2 s of a grid that dropped a quarter of them.
    for (const s of segs.slice(0, -1)) assert.ok(Math.abs(rate(s.times) - 10) < 0.5, `rate ${rate(s.times)}`);
  }
});

Deno.test("segmenter: slower and slightly fast (clock drift) jittery sources lose no frame", () => {
  for (const [source, fps] of [[5, 10], [10.02, 10], [12.5, 12.5], [24.9, 25]]) {
    const times = msightTimes(300, source, 7, 0.5 / source);
    const seg = new Segmenter({ fps, bufferSize: 40, overlapSize: 0, maxIdleS: 5, gapS: 2 });
    const ev = run(seg, "s", times);
    assert.equal(ev.filter((e) => e.kind === "drop").length, 0, `${source} fps at --fps ${fps}`);
  }
});

Deno.test("segmenter: faster cameras (25 and 12.5 fps, steady or jittery) are thinned to --fps 10 within 2% per segment", () => {
  for (const [source, jitter] of [[25, 0], [12.5, 0], [25, 0.03], [12.5, 0.05]]) {
    const n = 30 * source; // 30 s: six segments of 50 frames at 10 fps
    const times = jitter === 0
      ? Array.from({ length: n }, (_, i) => 1000 + i / source)
      : msightTimes(n, source, 11, jitter);
    const seg = new Segmenter({ fps: 10, bufferSize: 50, overlapSize: 0, maxIdleS: 5, gapS: 2 });
    const ev = run(seg, "fast", times);
    const segs = segments(ev);
    const full = segs.filter((s) => s.reason === "full");
    assert.ok(full.length >= 5, `${source} fps: ${full.length} full segments`);
    for (const [i, s] of full.entries()) {
      if (i === full.length - 1) break;
      const r = share(s, full[i + 1]);
      assert.ok(
        Math.abs(r - 10) / 10 <= 0.02,
        `${source} fps (jitter ${jitter}): segment at ${r.toFixed(3)} fps`,
      );
    }
    const kept = ev.filter((e) => e.kind === "frame").length;
    const thinned = ev.filter((e) => e.kind === "drop" && e.reason === "thinned").length;
    assert.equal(kept + thinned, times.length, "every frame is kept or reported thinned");
  }
});

Deno.test("segmenter: MSight's start-up burst (3 s of frames stamped within 0.5 s, then 10 fps) loses no frame", () => {
  // PyAV probes the stream before it decodes: MSight's RTSP node then hands over the buffered frames at once, and
  // time.time() stamps them ~17 ms apart (measured: 31 frames in 0.5 s at the interop test's camera).
  const burst = Array.from({ length: 31 }, (_, i) => 1764547200 + i * 0.017);
  const times = [...burst, ...msightTimes(200, 10, 9).map((t) => t - 1764547200 + burst.at(-1)! + 0.1)];
  const seg = new Segmenter({ fps: 10, bufferSize: 50, overlapSize: 0, maxIdleS: 5, gapS: 2 });
  const ev = run(seg, "burst", times);
  assert.equal(ev.filter((e) => e.kind === "drop").length, 0);
  assert.deepEqual(segments(ev).flatMap((s) => s.times), times);
});

Deno.test("segmenter: a stall mid-stream, then a burst that catches up (MSight's node held up on a busy machine), loses no frame", () => {
  // Seen in the interop suite under load: MSight's RTSP node stalls ~2.6 s (under --gap-threshold 3), then hands
  // over the buffered frames 15-40 ms apart, stamped as they come out. Over any few seconds the source is 10 fps.
  const r = prng(21);
  const times = msightTimes(150, 10, 21, 0.03);
  let t = times.at(-1)! + 2.6;
  for (let i = 0; i < 35; i++) times.push(t += 0.015 + r() * 0.025);
  times.push(...msightTimes(150, 10, 22, 0.03).map((x) => x - 1764547200 + t + 0.1));
  for (const gapS of [3, 2.7]) {
    const seg = new Segmenter({ fps: 10, bufferSize: 50, overlapSize: 0, maxIdleS: 5, gapS });
    const ev = run(seg, "stall", times);
    assert.deepEqual(ev.filter((e) => e.kind === "drop").map((e) => e.kind === "drop" && e.reason), []);
    assert.deepEqual(segments(ev).flatMap((s) => s.times), times);
  }
});

Deno.test("segmenter: the budget keeps whole frames; a fast source's early frames are thinned, a steady one's kept", () => {
  const b = new FrameBudget(10);
  assert.equal(b.take(0, true), true);
  assert.equal(b.take(0.04, true), false); // 0.4 frame, and the source runs fast
  assert.equal(b.take(0.05, false), true); // 0.5 frame, but the source is not fast: the frame only came early
  assert.equal(b.take(0.06, true), false); // no debt was left: the budget holds 0.1 frame
  assert.equal(b.take(0.16, true), true); // 1.1 frames
  b.reset();
  assert.equal(b.take(100, true), true);
  // The later half of the look-ahead decides: a burst at the frame itself does not make a source fast.
  const steady = Array.from({ length: 40 }, (_, i) => 0.1 * (i + 1));
  assert.equal(runsFast([...Array.from({ length: 30 }, (_, i) => i * 0.017), ...steady], 0, 4, 10), false);
  assert.equal(runsFast(Array.from({ length: 100 }, (_, i) => 0.04 * (i + 1)), 0, 4, 10), true);
  assert.equal(runsFast(Array.from({ length: 50 }, (_, i) => 0.08 * (i + 1)), 0, 4, 10), true); // 12.5 fps
  assert.equal(runsFast(Array.from({ length: 41 }, (_, i) => 0.0998 * (i + 1)), 0, 4, 10), false); // 10.02 fps
});

Deno.test("segmenter: a slower camera keeps its own timing; irregular 10 fps frames are all kept", () => {
  const seg = new Segmenter({ fps: 10, bufferSize: 100, overlapSize: 0, maxIdleS: 5, gapS: 2 });
  const ev: SegmentEvent[] = [];
  const times = [0, 0.2, 0.4, 0.6, 0.8]; // 5 fps
  for (const t of times) ev.push(...seg.push(frame("slow", 2000 + t)));
  const jitter = [0, 0.099, 0.201, 0.3, 0.389, 0.5, 0.601, 0.7, 0.8, 0.911];
  for (const t of jitter) ev.push(...seg.push(frame("real", 3000 + t)));
  ev.push(...seg.closeAll());
  const segs = segments(ev);
  assert.deepEqual(segs.find((s) => s.sensor === "slow")!.times, times.map((t) => 2000 + t));
  assert.equal(segs.find((s) => s.sensor === "real")!.times.length, 10);
  assert.ok(segs.every((s) => s.reason === "shutdown"));
});

Deno.test("segmenter: overlap frames open the next segment; sensors are separate", () => {
  const seg = new Segmenter({ fps: 10, bufferSize: 5, overlapSize: 2, maxIdleS: 5, gapS: 2 });
  const ev: SegmentEvent[] = [];
  for (let i = 0; i < 11; i++) {
    ev.push(...seg.push(frame("a", 100 + i * 0.1)));
    ev.push(...seg.push(frame("b", 500 + i * 0.1)));
  }
  ev.push(...seg.closeAll()); // decides the frames still inside the look-ahead; the third segment is then full
  const a = segments(ev).filter((s) => s.sensor === "a");
  assert.equal(a.length, 3);
  assert.deepEqual(a[0].times.map((t) => Math.round((t - 100) * 10)), [0, 1, 2, 3, 4]);
  assert.deepEqual(a[1].times.map((t) => Math.round((t - 100) * 10)), [3, 4, 5, 6, 7]);
  assert.equal(a[1].overlap, 2);
  assert.deepEqual(a[2].times.map((t) => Math.round((t - 100) * 10)), [6, 7, 8, 9, 10]);
  assert.ok(segments(ev).filter((s) => s.sensor === "b").every((s) => s.times.every((t) => t >= 500)));
});

Deno.test("segmenter: every flush reason (idle, gap, resolution, shutdown) and no frame lost", () => {
  const seg = new Segmenter({ fps: 10, bufferSize: 100, overlapSize: 3, maxIdleS: 5, gapS: 2 });
  const ev: SegmentEvent[] = [];
  let now = 0;
  for (let i = 0; i < 5; i++) ev.push(...seg.push(frame("c", 10 + i * 0.1), now += 100));
  ev.push(...seg.tick(now + 4000));
  assert.equal(ev.filter((e) => e.kind === "close").length, 0, "not idle yet");
  ev.push(...seg.tick(now + 6000)); // idle
  for (let i = 0; i < 3; i++) ev.push(...seg.push(frame("c", 20 + i * 0.1), now += 100));
  for (let i = 0; i < 3; i++) ev.push(...seg.push(frame("c", 30 + i * 0.1), now += 100)); // 10 s jump: gap
  ev.push(...seg.push(frame("c", 30.3, 640, 480), now += 100)); // resolution change
  ev.push(...seg.push(frame("c", 30.4, 640, 480), now += 100));
  ev.push(...seg.closeAll());
  const segs = segments(ev);
  assert.deepEqual(segs.map((s) => [s.reason, s.times.length]), [["idle", 5], ["gap", 3], ["resolution", 3], [
    "shutdown",
    2,
  ]]);
  assert.ok(segs.every((s) => s.overlap === 0), "overlap never crosses an idle, gap or resolution flush");
});

Deno.test("segmenter: duplicate and out-of-order frames are dropped, not encoded twice", () => {
  const seg = new Segmenter({ fps: 10, bufferSize: 100, overlapSize: 0, maxIdleS: 5, gapS: 2 });
  const f1 = frame("d", 1.0), f2 = frame("d", 1.1), f3 = frame("d", 1.2);
  const ev = [
    ...seg.push(f1),
    ...seg.push(f2),
    ...seg.push(f2),
    ...seg.push(f3),
    ...seg.push(frame("d", 1.15)),
    ...seg.closeAll(),
  ];
  const drops = ev.filter((e) => e.kind === "drop").map((e) => e.kind === "drop" && e.reason);
  assert.deepEqual(drops, ["duplicate", "late"]);
  assert.equal(ev.filter((e) => e.kind === "frame").length, 3);
});
