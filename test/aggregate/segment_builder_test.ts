import assert from "node:assert/strict";
import { mediaSlot, SegmentBuilder } from "../../src/aggregate/segment_builder.ts";
import type { SegmentFrame } from "../../src/aggregate/segmenter.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";

/** A small deterministic PRNG (mulberry32), so a failing sequence can be reproduced from its seed. */
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

type Gen = (rand: () => number, n: number) => number[];

/** Capture-time sequences (epoch s) of the kinds real sources give, and worse. */
const GENERATORS: Record<string, Gen> = {
  // MSight's RTSP node stamps time.time() when PyAV hands a frame over: 10 fps with gaps of 0.024-0.277 s.
  msightJitter: (r, n) => walk(n, () => 0.024 + r() * 0.253),
  duplicates: (r, n) => walk(n, () => (r() < 0.4 ? 0 : 0.1)),
  subMillisecond: (r, n) => walk(n, () => (r() < 0.5 ? r() * 0.0009 : 0.04 + r() * 0.1)),
  backwards: (r, n) => walk(n, () => (r() < 0.25 ? -r() * 0.5 : 0.1)),
  anything: (r, n) => walk(n, () => [0, -r() * 2, r() * 1e-6, r() * 0.3, 0.1][Math.floor(r() * 5)]),
};

function walk(n: number, step: () => number): number[] {
  const out = [1764547200.123456];
  while (out.length < n) out.push(out.at(-1)! + step());
  return out;
}

const W = 64, H = 48;

function frames(times: number[], rand: () => number): SegmentFrame[] {
  return times.map((t, i) => {
    const data = new Uint8Array(W * H * 3);
    for (let j = 0; j < data.length; j += 97) data[j] = Math.floor(rand() * 256);
    return {
      sensor: "cam",
      frameId: BigInt(i + 1),
      captureTs: t,
      width: W,
      height: H,
      format: "bgr24",
      data,
    };
  });
}

/** What `ffmpeg -v warning -i seg.mp4 -f null -` prints (nothing for a clean file), and the MP4's frame times. */
async function ffmpegCheck(mp4: Uint8Array): Promise<{ warnings: string; pts: number[] }> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const dec = await new Deno.Command("ffmpeg", { args: ["-v", "warning", "-i", path, "-f", "null", "-"] })
      .output();
    const probe = await new Deno.Command("ffprobe", {
      args: [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time",
        "-of",
        "csv=p=0",
        path,
      ],
    }).output();
    const text = new TextDecoder();
    return {
      warnings: (text.decode(dec.stdout) + text.decode(dec.stderr)).trim(),
      pts: text.decode(probe.stdout).trim().split("\n").map(Number),
    };
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("segment builder: any capture times give strictly increasing MP4 times that ffmpeg decodes without a warning", async () => {
  for (const [name, gen] of Object.entries(GENERATORS)) {
    for (const seed of [1, 2]) {
      for (const fps of [10, 12.5]) {
        const rand = prng(seed * 7919 + fps);
        const times = gen(rand, 30);
        const b = new SegmentBuilder({
          kind: "ffmpeg",
          config: { codec: "libx264", width: W, height: H, framerate: fps },
          maxFrames: times.length,
        });
        for (const f of frames(times, rand)) b.add(f);
        const seg = await b.finish();
        const where = `${name} seed ${seed} fps ${fps}: ${
          times.map((t) => (t - times[0]).toFixed(4)).join(" ")
        }`;
        assert.deepEqual(seg.captureTimestamps, times, where);
        const { warnings, pts } = await ffmpegCheck(joinBytes(seg.mp4));
        assert.equal(warnings, "", where);
        assert.equal(pts.length, times.length, where);
        for (let i = 1; i < pts.length; i++) {
          // At least one 1/fps tick apart (0.1% for the 57600 Hz timescale's rounding).
          assert.ok(pts[i] - pts[i - 1] >= (1 / fps) * 0.999, `${where}: pts ${pts[i - 1]} then ${pts[i]}`);
        }
      }
    }
  }
});

Deno.test("segment builder: a frame's MP4 slot is its capture time on the 1/fps grid, never a taken slot", () => {
  assert.equal(mediaSlot(0, 10, -1), 0);
  assert.equal(mediaSlot(0.024, 10, 0), 1); // rounds to 0, which is taken
  assert.equal(mediaSlot(0.301, 10, 1), 3); // jitter catches up with the grid
  assert.equal(mediaSlot(-5, 10, 3), 4); // backwards
  assert.equal(mediaSlot(0.4, 12.5, 2), 5);
  assert.equal(mediaSlot(NaN, 10, 7), 8);
});
