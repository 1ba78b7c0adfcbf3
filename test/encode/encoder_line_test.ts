import assert from "node:assert/strict";
import { EncoderLine } from "../../src/encode/encoder_line.ts";
import { createEncoder } from "../../src/encode/mod.ts";
import type { ChunkMetadata, EncodedChunk, EncoderConfig, FrameEncoder } from "../../src/encode/types.ts";
import type { InputFrame } from "../../src/codec/frame.ts";
import { Mp4SegmentMuxer } from "../../src/mux/mp4_muxer.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";
import { SegmentError } from "../../src/runtime/errors.ts";
import { convertFrame, decodeFrameCount, jpegInputs, loadFrames, probe } from "../helpers/media.ts";

/** One segment's encoder on `line`, its outputs collected. */
interface Seg {
  encoder: FrameEncoder;
  chunks: EncodedChunk[];
  metas: (ChunkMetadata | undefined)[];
  errors: Error[];
}

function segment(line: EncoderLine, config: EncoderConfig): Seg {
  const s: Omit<Seg, "encoder"> = { chunks: [], metas: [], errors: [] };
  const encoder = createEncoder(
    "ffmpeg",
    {
      output: (c, m) => (s.chunks.push(c), s.metas.push(m)),
      error: (e) => s.errors.push(e),
    },
    {},
    line,
  );
  encoder.configure(config);
  return { ...s, encoder };
}

async function encodeAll(seg: Seg, frames: InputFrame[]): Promise<void> {
  for (const f of frames) seg.encoder.encode(f);
  await seg.encoder.flush();
  seg.encoder.close();
}

/** The segment as an MP4, checked: it decodes alone without a warning, to exactly `frames` pictures. */
async function checkPlays(seg: Seg, codec: "avc" | "hevc", frames: InputFrame[]): Promise<void> {
  assert.deepEqual(seg.errors, []);
  assert.deepEqual(seg.chunks.map((c) => c.timestamp), frames.map((f) => f.timestampUs));
  assert.equal(seg.chunks[0].type, "key");
  assert.ok(seg.metas[0]?.decoderConfig, "the segment's first chunk carries its decoder config");
  const cfg = seg.metas[0].decoderConfig;
  const mux = new Mp4SegmentMuxer({ codec, width: cfg.codedWidth, height: cfg.codedHeight, fps: 10 });
  for (let i = 0; i < seg.chunks.length; i++) await mux.add(seg.chunks[i], seg.metas[i]);
  const mp4 = joinBytes(await mux.finalize());
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const out = await new Deno.Command("ffmpeg", { args: ["-v", "warning", "-i", path, "-f", "null", "-"] })
      .output();
    const text = new TextDecoder();
    assert.equal((text.decode(out.stdout) + text.decode(out.stderr)).trim(), "", "decodes without a warning");
  } finally {
    await Deno.remove(path);
  }
  const { stream, packets } = await probe(mp4);
  assert.equal(Number(stream.nb_frames), frames.length);
  assert.equal(packets[0].flags[0], "K");
  assert.equal(await decodeFrameCount(mp4), frames.length);
}

async function ffmpegChildren(): Promise<number[]> {
  const out = await new Deno.Command("ps", { args: ["-o", "pid=,comm=", "--ppid", String(Deno.pid)] })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.includes("ffmpeg"))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !(await check());) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const CONFIG: EncoderConfig = { codec: "libx264", width: 1280, height: 960, framerate: 10 };

Deno.test("encoder line: full segments (overlap re-encoded) share one ffmpeg; each starts on an IDR and plays alone", async () => {
  const frames = jpegInputs(await loadFrames(30));
  const line = new EncoderLine({ segmentFrames: 10, idleMs: 60_000 });
  try {
    // Segments of 10 frames, the second and third opening with the last 2 frames of the one before.
    const parts = [frames.slice(0, 10), frames.slice(8, 18), frames.slice(16, 26)];
    const segs = parts.map(() => segment(line, CONFIG));
    for (const [i, seg] of segs.entries()) {
      await encodeAll(seg, parts[i]);
      assert.ok(line.kept, `the process is kept after full segment ${i}`);
      assert.equal((await ffmpegChildren()).length, 1, "its flush needed no end of input: ffmpeg still runs");
    }
    assert.equal(line.started, 1);
    for (const [i, seg] of segs.entries()) await checkPlays(seg, "avc", parts[i]);

    // A partial segment (an idle or shutdown flush) uses the kept process, then ends it; the next one starts fresh.
    const partial = segment(line, CONFIG);
    await encodeAll(partial, frames.slice(26, 30));
    assert.equal(line.started, 1);
    assert.ok(!line.kept, "a partial segment ends the process");
    await checkPlays(partial, "avc", frames.slice(26, 30));
    const next = segment(line, CONFIG);
    await encodeAll(next, frames.slice(0, 10));
    assert.equal(line.started, 2);
    await checkPlays(next, "avc", frames.slice(0, 10));
  } finally {
    await line.close();
  }
  assert.deepEqual(await ffmpegChildren(), []);
});

Deno.test("encoder line: the next segment's frames may come before the previous one's flush has finished", async () => {
  const frames = jpegInputs(await loadFrames(20));
  const line = new EncoderLine({ segmentFrames: 10, idleMs: 60_000 });
  try {
    const a = segment(line, CONFIG), b = segment(line, CONFIG);
    // As the aggregator does: segment a closes (flush not awaited), segment b's frames follow at once.
    for (const f of frames.slice(0, 10)) a.encoder.encode(f);
    const flushedA = a.encoder.flush();
    for (const f of frames.slice(10, 20)) b.encoder.encode(f);
    const flushedB = b.encoder.flush();
    await Promise.all([flushedA, flushedB]);
    a.encoder.close(), b.encoder.close();
    assert.equal(line.started, 1);
    await checkPlays(a, "avc", frames.slice(0, 10));
    await checkPlays(b, "avc", frames.slice(10, 20));
  } finally {
    await line.close();
  }
});

Deno.test("encoder line: libx265 segments start on a key picture and play alone", async () => {
  const frames = jpegInputs(await loadFrames(8));
  const line = new EncoderLine({ segmentFrames: 4, idleMs: 60_000 });
  try {
    const config: EncoderConfig = { ...CONFIG, codec: "libx265" };
    const a = segment(line, config), b = segment(line, config);
    await encodeAll(a, frames.slice(0, 4));
    await encodeAll(b, frames.slice(4, 8));
    assert.equal(line.started, 1);
    assert.match(b.metas[0]!.decoderConfig!.codec, /^hvc1\./);
    await checkPlays(a, "hevc", frames.slice(0, 4));
    await checkPlays(b, "hevc", frames.slice(4, 8));
  } finally {
    await line.close();
  }
});

Deno.test("encoder line: another size or format starts a fresh process; raw BGR24 works too", async () => {
  const fixture = await loadFrames(8);
  const jpegs = jpegInputs(fixture);
  const line = new EncoderLine({ segmentFrames: 4, idleMs: 60_000 });
  try {
    const a = segment(line, CONFIG);
    await encodeAll(a, jpegs.slice(0, 4));
    const raw: InputFrame[] = [];
    for (const f of fixture.slice(4, 8)) {
      const data = await convertFrame(f.jpeg, 320, 240, "bgr24");
      raw.push({ data, format: "bgr24", width: 320, height: 240, timestampUs: f.timestampUs });
    }
    const b = segment(line, { ...CONFIG, width: 320, height: 240 });
    await encodeAll(b, raw);
    assert.equal(line.started, 2);
    await checkPlays(a, "avc", jpegs.slice(0, 4));
    await checkPlays(b, "avc", raw);
    assert.equal((await ffmpegChildren()).length, 1, "the first process ended, the second is kept");
  } finally {
    await line.close();
  }
});

Deno.test("encoder line: close() mid-segment kills the process; an idle line ends its process", async () => {
  const frames = jpegInputs(await loadFrames(10));
  const line = new EncoderLine({ segmentFrames: 4, idleMs: 300 });
  try {
    const a = segment(line, CONFIG);
    a.encoder.encode(frames[0]);
    a.encoder.encode(frames[1]);
    await waitFor(async () => (await ffmpegChildren()).length === 1, "ffmpeg to start");
    a.encoder.close(); // a segment dropped half-way: its process cannot start the next one on an IDR
    await waitFor(async () => (await ffmpegChildren()).length === 0, "the process to be killed");
    assert.deepEqual(a.errors, []);

    const b = segment(line, CONFIG);
    await encodeAll(b, frames.slice(2, 6));
    assert.equal(line.started, 2);
    // No next segment within idleMs: the kept process is ended.
    await waitFor(async () => !line.kept && (await ffmpegChildren()).length === 0, "the idle process to end");
    await checkPlays(b, "avc", frames.slice(2, 6));
  } finally {
    await line.close();
  }
});

Deno.test("encoder line: ffmpeg killed under a kept segment fails that segment only; the next one starts fresh", async () => {
  const frames = jpegInputs(await loadFrames(12));
  const line = new EncoderLine({ segmentFrames: 4, idleMs: 60_000 });
  try {
    const a = segment(line, CONFIG);
    await encodeAll(a, frames.slice(0, 4));
    const [pid] = await ffmpegChildren();
    const b = segment(line, CONFIG);
    for (const f of frames.slice(4, 8)) b.encoder.encode(f);
    const flushed = b.encoder.flush();
    Deno.kill(pid, "SIGKILL"); // before b's first frame is written (that happens on a later turn of the event loop)
    await assert.rejects(flushed, SegmentError);
    assert.equal(b.errors.length, 1);
    b.encoder.close();
    const c = segment(line, CONFIG);
    await encodeAll(c, frames.slice(8, 12));
    assert.equal(line.started, 2);
    await checkPlays(a, "avc", frames.slice(0, 4));
    await checkPlays(c, "avc", frames.slice(8, 12));
  } finally {
    await line.close();
  }
  assert.deepEqual(await ffmpegChildren(), []);
});

Deno.test("encoder line: a kept process does not keep its finished segments alive", async () => {
  // Its own Deno, with V8's gc exposed (the test runner's is not): the check counts what a full collection frees.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      "-A",
      new URL("./line_retention_check.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.ok(out.success, `the check failed: ${text.decode(out.stderr).trim()}`);
  const result = JSON.parse(text.decode(out.stdout).trim().split("\n").at(-1)!);
  assert.deepEqual(
    result,
    { kept: true, started: 1, alive: 0 },
    "the first five segments' encoders were freed",
  );
});
