/**
 * Run by encoder_line_test.ts in its own Deno, with V8's `gc` exposed: encodes six full segments on one kept
 * process and prints, as JSON, how many of the first five segments' encoders the garbage collector could not free.
 * A segment's encoder holds its output callback (in the aggregator: the segment's MP4), so one kept alive by the
 * process is a leak that grows by a segment per segment.
 */
import { EncoderLine } from "../../src/encode/encoder_line.ts";
import { createEncoder } from "../../src/encode/mod.ts";
import { jpegInputs, loadFrames } from "../helpers/media.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (typeof gc !== "function") throw new Error("run with --v8-flags=--expose-gc");
const frames = jpegInputs(await loadFrames(10));
const line = new EncoderLine({ segmentFrames: 10, idleMs: 60_000 });
const refs: WeakRef<object>[] = [];
try {
  for (let s = 0; s < 6; s++) {
    // What the segment's output callback holds (the aggregator's: its muxer and its pages).
    const held = { pages: [new Uint8Array(1 << 20)] };
    refs.push(new WeakRef(held));
    const enc = createEncoder("ffmpeg", { output: () => void held.pages.length, error: () => {} }, {}, line);
    enc.configure({ codec: "libx264", width: 1280, height: 960, framerate: 10 });
    for (const [i, f] of frames.entries()) enc.encode({ ...f, timestampUs: (s * 10 + i) * 100_000 });
    await enc.flush();
    enc.close();
  }
  const kept = line.kept;
  // Twice, a turn apart: promise jobs queued by the last segment settle in between.
  gc();
  await new Promise((r) => setTimeout(r, 0));
  gc();
  console.log(
    JSON.stringify({ kept, started: line.started, alive: refs.slice(0, 5).filter((r) => r.deref()).length }),
  );
} finally {
  await line.close();
}
