import assert from "node:assert/strict";
import { defaultPreset, normalizeConfig, outputSize } from "../../src/encode/config.ts";
import { detectEncoderKind } from "../../src/encode/mod.ts";
import { Mp4SegmentMuxer } from "../../src/mux/mp4_muxer.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";
import { FatalError, SegmentError } from "../../src/runtime/errors.ts";
import {
  type Collected,
  collectingEncoder,
  convertFrame,
  decodeFrameCount,
  jpegInputs,
  loadFrames,
  probe,
  topLevelBoxes,
} from "../helpers/media.ts";
import { ffmpegArgs } from "../../src/encode/ffmpeg_encoder.ts";

/** Muxes what an encoder produced for one segment. */
async function muxCollected(c: Collected, codec: "avc" | "hevc", from = 0): Promise<Uint8Array> {
  const cfg = c.metas[from]?.decoderConfig;
  assert.ok(cfg, "first chunk of a segment carries decoderConfig");
  const mux = new Mp4SegmentMuxer({ codec, width: cfg.codedWidth, height: cfg.codedHeight, fps: 10 });
  for (let i = from; i < c.chunks.length; i++) await mux.add(c.chunks[i], c.metas[i]);
  return joinBytes(await mux.finalize());
}

async function childProcesses(): Promise<string[]> {
  const out = await new Deno.Command("ps", { args: ["-o", "stat=,comm=", "--ppid", String(Deno.pid)] })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim()).filter((l) => l !== "");
}

Deno.test("ffmpeg encoder: 30 real JPEG frames → H.264 MP4 with capture-time pts and real duration", async () => {
  const frames = await loadFrames(30);
  const c = collectingEncoder("ffmpeg", { width: 1280, height: 960, framerate: 10 });
  for (const f of jpegInputs(frames)) c.encoder.encode(f);
  await c.encoder.flush();
  assert.deepEqual(c.errors, []);
  assert.equal(c.chunks.length, 30);
  assert.equal(c.encoder.encodeQueueSize, 0);
  assert.deepEqual(c.chunks.map((ch) => ch.timestamp), frames.map((f) => f.timestampUs));
  assert.equal(c.chunks[0].type, "key");
  assert.match(c.metas[0]!.decoderConfig!.codec, /^avc1\.[0-9a-f]{6}$/);
  assert.ok(c.metas.slice(1).every((m) => m === undefined));
  c.encoder.close();

  const mp4 = await muxCollected(c, "avc");
  const boxes = topLevelBoxes(mp4);
  assert.ok(boxes.indexOf("moov") < boxes.indexOf("mdat"), `moov before mdat: ${boxes}`);
  const { stream, packets } = await probe(mp4);
  assert.equal(stream.codec_name, "h264");
  assert.equal(stream.codec_tag_string, "avc1");
  // JPEGs are full range, and so is the stream made from them (no conversion: outputPixelFormat).
  assert.equal(stream.pix_fmt, "yuvj420p");
  assert.equal(stream.color_range, "pc");
  assert.equal(stream.width, 1280);
  assert.equal(stream.height, 960);
  assert.equal(Number(stream.nb_frames), 30);
  const t0 = frames[0].timestampUs;
  const span = (frames[29].timestampUs - t0) / 1e6 + 0.1;
  assert.ok(Math.abs(Number(stream.duration) - span) < 0.003, `duration ${stream.duration} vs ${span}`);
  packets.forEach((p, i) => {
    assert.ok(
      Math.abs(Number(p.pts_time) - (frames[i].timestampUs - t0) / 1e6) < 0.0005,
      `pts of packet ${i}`,
    );
  });
  assert.equal(await decodeFrameCount(mp4), 30);
});

Deno.test("ffmpeg encoder: libx265 → HEVC tagged hvc1", async () => {
  const frames = await loadFrames(6);
  const c = collectingEncoder("ffmpeg", { codec: "libx265", width: 1280, height: 960, framerate: 10 });
  for (const f of jpegInputs(frames)) c.encoder.encode(f);
  await c.encoder.flush();
  c.encoder.close();
  assert.match(c.metas[0]!.decoderConfig!.codec, /^hvc1\./);
  const mp4 = await muxCollected(c, "hevc");
  const { stream } = await probe(mp4);
  assert.equal(stream.codec_name, "hevc");
  assert.equal(stream.codec_tag_string, "hvc1");
  assert.equal(stream.pix_fmt, "yuvj420p");
  assert.equal(Number(stream.nb_frames), 6);
  assert.equal(await decodeFrameCount(mp4), 6);
});

Deno.test("ffmpeg encoder: raw BGR24 input", async () => {
  const frames = await loadFrames(4);
  const c = collectingEncoder("ffmpeg", { width: 320, height: 240, framerate: 10 });
  for (const f of frames) {
    const data = await convertFrame(f.jpeg, 320, 240, "bgr24");
    c.encoder.encode({ data, format: "bgr24", width: 320, height: 240, timestampUs: f.timestampUs });
  }
  await c.encoder.flush();
  c.encoder.close();
  assert.deepEqual(c.errors, []);
  assert.deepEqual(c.chunks.map((ch) => ch.timestamp), frames.map((f) => f.timestampUs));
  assert.equal(c.chunks[0].type, "key");
  const mp4 = await muxCollected(c, "avc");
  const { stream } = await probe(mp4);
  assert.equal(Number(stream.nb_frames), 4);
  assert.equal(stream.width, 320);
  assert.equal(await decodeFrameCount(mp4), 4);
});

for (const kind of ["ffmpeg", "wasm"] as const) {
  Deno.test(`${kind} encoder: one encoder makes one segment; a frame of another size or format is refused`, async () => {
    const [first, second] = jpegInputs(await loadFrames(2));
    const c = collectingEncoder(kind, { width: 1280, height: 960, framerate: 10, preset: "ultrafast" });
    assert.throws(
      () => c.encoder.configure({ width: 640, height: 480, framerate: 10 }),
      /configure\(\) while configured/,
    );
    assert.throws(
      () => c.encoder.encode({ ...first, width: 640, height: 480 }),
      (e: Error) =>
        e instanceof TypeError &&
        /frame is 640x480 but the encoder is configured for 1280x960/.test(e.message),
    );
    c.encoder.encode(first);
    const raw = { data: new Uint8Array(1280 * 960 * 3), format: "bgr24" as const, width: 1280, height: 960 };
    assert.throws(
      () => c.encoder.encode({ ...raw, timestampUs: second.timestampUs }),
      (e: Error) =>
        e instanceof TypeError && /frame is bgr24 but this segment's frames are jpeg/.test(e.message),
    );
    assert.throws(() => c.encoder.encode(first), RangeError, "timestamps increase");
    c.encoder.encode(second);
    await c.encoder.flush();
    assert.deepEqual(c.errors, []);
    assert.deepEqual(c.chunks.map((ch) => ch.timestamp), [first.timestampUs, second.timestampUs]);
    assert.equal(c.encoder.encodeQueueSize, 0);
    assert.throws(
      () => c.encoder.encode({ ...second, timestampUs: second.timestampUs + 1e5 }),
      /encode\(\) while flushed/,
    );
    await assert.rejects(() => c.encoder.flush(), /flush\(\) while flushed/);
    c.encoder.close();
    assert.equal(c.encoder.state, "closed");
  });
}

Deno.test("ffmpeg encoder: odd 641x481 input is cropped to 640x480 (4:2:0 cannot code odd sizes) and plays", async () => {
  const frames = await loadFrames(4);
  const odd = await Promise.all(frames.map((f) => convertFrame(f.jpeg, 641, 481, "mjpeg")));
  const c = collectingEncoder("ffmpeg", { width: 641, height: 481, framerate: 10 });
  odd.forEach((data, i) =>
    c.encoder.encode({ data, format: "jpeg", width: 641, height: 481, timestampUs: i * 1e5 })
  );
  await c.encoder.flush();
  c.encoder.close();
  assert.deepEqual(outputSize(641, 481), { width: 640, height: 480 });
  assert.equal(c.metas[0]!.decoderConfig!.codedWidth, 640);
  const mp4 = await muxCollected(c, "avc");
  const { stream } = await probe(mp4);
  assert.equal(stream.width, 640);
  assert.equal(stream.height, 480);
  assert.equal(await decodeFrameCount(mp4), 4);
});

Deno.test("ffmpeg encoder: h264_nvenc without a GPU falls back to libx264, reported once per process", async () => {
  const frames = await loadFrames(5);
  const c = collectingEncoder("ffmpeg", { codec: "h264_nvenc", width: 1280, height: 960, framerate: 10 });
  for (const f of jpegInputs(frames)) c.encoder.encode(f);
  await c.encoder.flush();
  c.encoder.close();
  assert.deepEqual(c.errors, []);
  if (c.encoder.codecInUse === "h264_nvenc") {
    console.log("NVENC works on this machine: fallback not exercised");
    return;
  }
  assert.equal(c.encoder.codecInUse, "libx264");
  assert.equal(c.fallbacks.length, 1);
  assert.equal(c.fallbacks[0].requested, "h264_nvenc");
  assert.equal(c.fallbacks[0].used, "libx264");
  assert.match(c.fallbacks[0].reason, /cuda|nvenc|device|driver/i);
  assert.equal(c.chunks.length, 5, "frames fed before the failure were replayed");
  const { stream } = await probe(await muxCollected(c, "avc"));
  assert.equal(stream.codec_name, "h264");
  assert.equal(Number(stream.nb_frames), 5);

  const again = collectingEncoder("ffmpeg", { codec: "h264_nvenc", width: 1280, height: 960, framerate: 10 });
  again.encoder.encode(jpegInputs(frames)[0]);
  await again.encoder.flush();
  again.encoder.close();
  assert.equal(again.encoder.codecInUse, "libx264");
  assert.equal(again.fallbacks.length, 0, "the known fallback is not reported again");
});

Deno.test("ffmpeg encoder: a missing ffmpeg is a clear FatalError", async () => {
  const c = collectingEncoder("ffmpeg", { width: 1280, height: 960, framerate: 10 }, "/nonexistent/ffmpeg");
  c.encoder.encode(jpegInputs(await loadFrames(1))[0]);
  await assert.rejects(
    () => c.encoder.flush(),
    (e: Error) => e instanceof FatalError && /not found/.test(e.message),
  );
  assert.equal(c.errors.length, 1);
  assert.equal(c.encoder.state, "closed");
});

Deno.test("ffmpeg encoder: close() mid-segment kills ffmpeg and leaves no zombie; bad input is refused", async () => {
  const frames = jpegInputs(await loadFrames(3));
  const c = collectingEncoder("ffmpeg", { width: 1280, height: 960, framerate: 10 });
  c.encoder.encode(frames[0]);
  c.encoder.encode(frames[1]);
  assert.throws(() => c.encoder.encode(frames[0]), RangeError); // timestamp goes back
  assert.throws(() => c.encoder.encode({ ...frames[2], data: new Uint8Array([1, 2, 3, 4]) }), TypeError);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(
    (await childProcesses()).some((p) => p.includes("ffmpeg")),
    "ffmpeg runs while the segment is open",
  );
  c.encoder.close();
  for (let i = 0; i < 50 && (await childProcesses()).some((p) => p.includes("ffmpeg")); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual((await childProcesses()).filter((p) => p.includes("ffmpeg")), []);
  assert.throws(() => c.encoder.encode(frames[2]), /closed/);
  assert.deepEqual(c.errors, []);
});

Deno.test("wasm encoder: valid H.264 MP4; libx265 falls back to libx264 with a report", async () => {
  const frames = await loadFrames(4);
  const c = collectingEncoder("wasm", {
    codec: "libx265",
    width: 1280,
    height: 960,
    framerate: 10,
    preset: "ultrafast",
  });
  const inputs = jpegInputs(frames);
  for (const f of inputs) c.encoder.encode(f);
  await c.encoder.flush();
  c.encoder.close();
  assert.deepEqual(c.errors, []);
  assert.equal(c.fallbacks.length, 1);
  assert.equal(c.encoder.codecInUse, "libx264");
  assert.deepEqual(c.chunks.map((ch) => ch.timestamp), frames.map((f) => f.timestampUs));
  assert.equal(inputs[0].data.byteLength, frames[0].jpeg.byteLength, "caller's frame bytes are not detached");
  const mp4 = await muxCollected(c, "avc");
  const { stream } = await probe(mp4);
  assert.equal(stream.codec_tag_string, "avc1");
  assert.equal(stream.pix_fmt, "yuv420p");
  assert.equal(Number(stream.nb_frames), 4);
  assert.equal(await decodeFrameCount(mp4), 4);
});

Deno.test("wasm encoder runs under deno run without --allow-run (encoder kind detected as wasm)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/sandboxed.ts`;
    const out = `${dir}/out.mp4`;
    const src = new URL("../../src/", import.meta.url).href;
    const helpers = new URL("../helpers/media.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `
import { createEncoder, detectEncoderKind } from "${src}encode/mod.ts";
import { Mp4SegmentMuxer } from "${src}mux/mp4_muxer.ts";
import { jpegInputs, loadFrames } from "${helpers}";
const kind = await detectEncoderKind();
if (kind !== "wasm") throw new Error("expected wasm, got " + kind);
const mux = new Mp4SegmentMuxer({ codec: "avc", width: 1280, height: 960, fps: 10 });
const adds: Promise<void>[] = [];
const enc = createEncoder(kind, { output: (c, m) => adds.push(mux.add(c, m)), error: (e) => { throw e; } });
enc.configure({ width: 1280, height: 960, framerate: 10, preset: "ultrafast" });
for (const f of jpegInputs(await loadFrames(3))) enc.encode(f);
await enc.flush();
enc.close();
await Promise.all(adds);
await Deno.writeFile(${JSON.stringify(out)}, ReadableStream.from(await mux.finalize()));
console.log("sandboxed ok");
`,
    );
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const res = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--config", config, "--allow-read", `--allow-write=${dir}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
    assert.ok(res.success, text);
    assert.match(text, /sandboxed ok/);
    const { stream } = await probe(await Deno.readFile(out));
    assert.equal(stream.codec_name, "h264");
    assert.equal(Number(stream.nb_frames), 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("detectEncoderKind: ffmpeg when subprocesses are allowed", async () => {
  assert.equal(await detectEncoderKind(), "ffmpeg");
});

/** RGB PSNR (dB) of picture `index` of an MP4 against a JPEG: a wrong colour range shows as a low figure. */
async function framePsnr(mp4: Uint8Array, index: number, jpeg: Uint8Array): Promise<number> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.mp4`, mp4);
    await Deno.writeFile(`${dir}/b.jpg`, jpeg);
    const graph = `[0]select=eq(n\\,${index}),format=rgb24[a];[1]format=rgb24[b];[a][b]psnr`;
    const out = await new Deno.Command("ffmpeg", {
      args: ["-hide_banner", "-i", `${dir}/a.mp4`, "-i", `${dir}/b.jpg`, "-lavfi", graph, "-f", "null", "-"],
    }).output();
    const m = /PSNR .*average:([\d.]+)/.exec(new TextDecoder().decode(out.stderr));
    assert.ok(m, "psnr printed");
    return Number(m[1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A fixture JPEG re-encoded by ffmpeg with `outArgs` (`-strict -1 -pix_fmt yuv420p`: limited range). */
async function reencodeJpeg(jpeg: Uint8Array, outArgs: string[]): Promise<Uint8Array> {
  const child = new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-f", "image2pipe", "-c:v", "mjpeg", "-i", "pipe:0", "-frames:v", "1", ...outArgs]
      .concat(["-c:v", "mjpeg", "-q:v", "2", "-f", "image2pipe", "pipe:1"]),
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(jpeg);
  await w.close();
  const out = await child.output();
  assert.ok(out.success);
  return out.stdout;
}

Deno.test("ffmpeg encoder: colours kept from full-range (cameras, OpenCV), limited-range and 4:4:4 JPEGs", async () => {
  const frames = await loadFrames(5);
  const variants: [string, Uint8Array[]][] = [
    ["full-range 4:2:0", frames.map((f) => f.jpeg)],
    [
      "limited range (ffmpeg's CS=ITU601)",
      await Promise.all(frames.map((f) => reencodeJpeg(f.jpeg, ["-strict", "-1", "-pix_fmt", "yuv420p"]))),
    ],
    [
      "full-range 4:4:4",
      await Promise.all(frames.map((f) => reencodeJpeg(f.jpeg, ["-pix_fmt", "yuvj444p"]))),
    ],
  ];
  for (const [name, jpegs] of variants) {
    const c = collectingEncoder("ffmpeg", { width: 1280, height: 960, framerate: 10 });
    jpegs.forEach((data, i) => c.encoder.encode({ ...jpegInputs(frames)[i], data }));
    await c.encoder.flush();
    c.encoder.close();
    assert.deepEqual(c.errors, []);
    const mp4 = await muxCollected(c, "avc");
    // Full range out, whichever range came in: a limited-range JPEG is expanded once, by ffmpeg's scaler.
    const { stream } = await probe(mp4);
    assert.deepEqual([stream.pix_fmt, stream.color_range], ["yuvj420p", "pc"], name);
    // 39-40 dB here; a range converted twice (measured by hand on these frames) gives 26.5 dB.
    const psnr = await framePsnr(mp4, 2, frames[2].jpeg);
    assert.ok(psnr > 36, `${name}: PSNR ${psnr.toFixed(1)} dB against the source frame`);
  }
});

Deno.test("default presets: superfast for x264, veryfast for x265, p4 for NVENC; an NVENC preset maps back on fallback", () => {
  const base = { width: 1280, height: 720, framerate: 10 };
  assert.equal(normalizeConfig(base).preset, "superfast");
  assert.equal(normalizeConfig({ ...base, codec: "libx265" }).preset, "veryfast");
  assert.equal(normalizeConfig({ ...base, codec: "h264_nvenc" }).preset, "p4");
  assert.equal(
    normalizeConfig({ ...base, preset: "medium" }).preset,
    "medium",
    "an asked-for preset is kept",
  );
  const args = ffmpegArgs(normalizeConfig({ ...base, codec: "h264_nvenc" }), "libx264", "jpeg");
  assert.equal(args[args.indexOf("-preset") + 1], defaultPreset("libx264"), "x264 cannot take p4");
});

Deno.test("ffmpeg encoder: a segment ffmpeg cannot encode is a SegmentError (one segment lost), not a FatalError", async () => {
  const frames = jpegInputs(await loadFrames(3));
  // A JPEG that starts right (SOI) and then is noise: the checks let it through, ffmpeg's decoder does not.
  const noise = new Uint8Array(4096).map((_, i) => (i * 7919) % 251);
  noise.set([0xff, 0xd8, 0xff, 0xe0]);
  frames.splice(1, 0, { ...frames[1], data: noise, timestampUs: frames[0].timestampUs + 50_000 });
  const c = collectingEncoder("ffmpeg", { codec: "libx264", width: 1280, height: 960, framerate: 10 });
  for (const f of frames) c.encoder.encode(f);
  await assert.rejects(
    () => c.encoder.flush(),
    (e: Error) => e instanceof SegmentError && e.reason === "encoder_error" && !(e instanceof FatalError),
  );
  c.encoder.close();
});
