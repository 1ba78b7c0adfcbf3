import assert from "node:assert/strict";
import { Segmenter, type SegmentEvent, type SegmentFrame } from "../../src/aggregate/segmenter.ts";

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

Deno.test("segmenter: a 25 fps camera is thinned to --fps 10 on the capture-time grid, never sped up", () => {
  const seg = new Segmenter({ fps: 10, bufferSize: 10, overlapSize: 0, maxIdleS: 5, gapS: 2 });
  const ev: SegmentEvent[] = [];
  for (let i = 0; i < 250; i++) ev.push(...seg.push(frame("cam", 1000 + i * 0.04)));
  const segs = segments(ev);
  assert.equal(segs.length, 10);
  for (const s of segs) {
    assert.equal(s.times.length, 10);
    assert.equal(s.reason, "full");
    // 10 frames at 10 fps span about 0.9-1.0 s of real time.
    const span = s.times.at(-1)! - s.times[0];
    assert.ok(span > 0.8 && span < 1.1, `span ${span}`);
  }
  // 250 frames over 9.96 s land on slots 0..100: 101 kept (10 full segments + 1 frame of the next), 149 thinned.
  assert.equal(ev.filter((e) => e.kind === "frame").length, 101);
  assert.equal(ev.filter((e) => e.kind === "drop" && e.reason === "thinned").length, 149);
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
  ];
  const drops = ev.filter((e) => e.kind === "drop").map((e) => e.kind === "drop" && e.reason);
  assert.deepEqual(drops, ["duplicate", "late"]);
  assert.equal(ev.filter((e) => e.kind === "frame").length, 3);
});
