/**
 * The aggregator as users run it: a real process on a real Redis, fed the real camera frames with their real capture
 * times; every segment checked with ffprobe.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { type NodeProcess, startNode } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { probeMp4 } from "../helpers/ffprobe.ts";
import { decodeMessage, encodeMessage } from "../../src/bus/wire.ts";
import { IMAGE_DATA_TYPE, type ImageData, type VideoData } from "../../src/bus/message.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";
import { mediaSlot } from "../../src/aggregate/segment_builder.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";

const FIX = new URL("../fixtures/mcity-gs-ne/", import.meta.url).pathname;
const ids = new Snowflake(77);

/** The 170 real frames and their capture times (the CSV's local camera time, read as UTC). */
async function realFrames(): Promise<{ jpeg: Uint8Array; t: number }[]> {
  const rows = (await Deno.readTextFile(`${FIX}timestamps.csv`)).trim().split("\n").slice(1);
  return await Promise.all(rows.map(async (row) => {
    const [, file, time] = row.split(",");
    return { jpeg: await Deno.readFile(FIX + file), t: Date.parse(time + "Z") / 1000 };
  }));
}

function image(
  sensor: string,
  t: number,
  data: Uint8Array,
  size: [number, number, number],
  encoded = true,
): ImageData {
  return {
    dataType: IMAGE_DATA_TYPE,
    sensorName: sensor,
    captureTimestamp: t,
    creationTimestamp: t + 0.01,
    frameId: ids.next(),
    deviceName: "cam-box",
    image: data,
    isEncoded: encoded,
    detectionResults: null,
    size,
  };
}

/** What `ffmpeg -v warning` says decoding the MP4 (nothing for a clean file). */
async function decodeWarnings(mp4: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const out = await new Deno.Command("ffmpeg", { args: ["-v", "warning", "-i", path, "-f", "null", "-"] })
      .output();
    const text = new TextDecoder();
    return (text.decode(out.stdout) + text.decode(out.stderr)).trim();
  } finally {
    await Deno.remove(path);
  }
}

async function ffmpegOut(args: string[]): Promise<Uint8Array> {
  const r = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", ...args, "-"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  return r.stdout;
}

interface Rig {
  redis: TestRedis;
  pub: Redis;
  node: NodeProcess;
  segments: VideoData[];
  /** The segments' messages as they came off pub/sub. */
  raw: Uint8Array[];
  send(img: ImageData): Promise<void>;
  close(): Promise<void>;
}

async function rig(args: string[], perms = permissionFlags("aggregator")): Promise<Rig> {
  const redis = await startRedis();
  const pub = new Redis({ host: "127.0.0.1", port: redis.port });
  const sub = new Redis({ host: "127.0.0.1", port: redis.port });
  const segments: VideoData[] = [];
  const raw: Uint8Array[] = [];
  sub.on("messageBuffer", (_c: Buffer, m: Buffer) => {
    raw.push(new Uint8Array(m));
    segments.push(decodeMessage(raw.at(-1)!) as VideoData);
  });
  await sub.subscribe("video");
  const node = startNode(
    "nodes/aggregator.ts",
    ["-n", "agg", "-st", "frames", "-pt", "video", ...args],
    redis.env,
    perms,
  );
  await node.waitForLine(/aggregating frames → video/, 30_000);
  return {
    redis,
    pub,
    node,
    segments,
    raw,
    send: async (img) => void await pub.publish("frames", Buffer.from(encodeMessage(img))),
    async close() {
      node.kill("SIGTERM");
      await node.exit;
      await node.stop();
      pub.disconnect();
      sub.disconnect();
      await redis.stop();
    },
  };
}

Deno.test("aggregator: the tutorial command makes real-speed H.264 avc1 segments from the real camera frames", async () => {
  const frames = await realFrames();
  // --max-idle 60: the partial last segment must wait for SIGTERM, however slow this machine encodes.
  const metricsPort = freePort();
  const r = await rig([
    "--fps",
    "10",
    "--buffer-size",
    "50",
    "--overlap-size",
    "5",
    "--max-idle",
    "60",
    "--metrics-port",
    String(metricsPort),
  ]);
  try {
    for (const f of frames) await r.send(image("gs-ne", f.t, f.jpeg, [960, 1280, 3]));
    await waitFor(() => r.segments.length >= 3, 30_000, "three full segments");
    // One ffmpeg for the sensor, kept across its full segments (each still starts on an IDR: checked below).
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((res) => res.text());
    assert.match(metrics, /^msight_encoder_processes_started_total\{sensor="gs-ne"\} 1$/m);
    r.node.kill("SIGTERM"); // the partial last segment is flushed, not lost
    assert.equal(await r.node.exit, 0);
    await waitFor(() => r.segments.length >= 4, 5000, "the flushed partial segment");
    const segs = r.segments;
    assert.deepEqual(segs.map((s) => s.info!.flushReason), ["full", "full", "full", "shutdown"]);
    // Every real frame was used once, plus the overlaps (the camera is ~10 fps: nothing to thin).
    const unique = new Set(segs.flatMap((s) => s.frameIds));
    assert.equal(unique.size, frames.length);
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      const p = await probeMp4(s.video);
      assert.equal(p.codec, "h264");
      assert.equal(p.tag, "avc1");
      assert.equal(p.pixFmt, "yuvj420p", "the JPEGs' full range, kept (outputPixelFormat)");
      assert.deepEqual([p.width, p.height], [1280, 960]);
      // Fast start; the sample table's spare reserved room, if any, is a free box before the data.
      assert.deepEqual(
        p.boxes.filter((b) => b !== "free").slice(0, 3),
        ["ftyp", "moov", "mdat"],
        "fast start",
      );
      assert.equal(p.frames, s.frameIds.length);
      assert.equal(s.info!.frameCount, s.frameIds.length);
      assert.equal(await decodeWarnings(s.video), "", `segment ${i} decodes alone without a warning`);
      // Plays at real speed: each sample sits at its capture time on the 1/fps grid (never two in one slot), so the
      // file lasts the real time span (+ one frame) to within a slot.
      const span = s.captureTimestamps.at(-1)! - s.captureTimestamps[0];
      assert.ok(Math.abs(p.duration - (span + 0.1)) < 0.11, `duration ${p.duration} vs span ${span}`);
      let slot = -1;
      const slots = s.captureTimestamps.map((t) => (slot = mediaSlot(t - s.captureTimestamps[0], 10, slot)));
      p.pts.forEach((x, k) =>
        assert.ok(Math.abs(x - slots[k] / 10) < 0.002, `sample ${k}: ${x} vs ${slots[k]}`)
      );
      assert.equal(s.captureTimestamp, s.captureTimestamps[0]);
      assert.equal(s.sensorName, "gs-ne");
      assert.equal(s.info!.encoder, "ffmpeg:libx264");
      if (i > 0) {
        // The last 5 frames of a segment open the next, by frame_id.
        assert.deepEqual(s.frameIds.slice(0, 5), segs[i - 1].frameIds.slice(-5));
        assert.equal(s.info!.overlapFrames, 5);
      }
    }
    assert.equal(segs[0].frameIds.length, 50);
    // The durable stream (for sinks that restart) holds the same messages, byte for byte.
    const entries = await r.pub.xrangeBuffer("MSIGHT:STREAM:video", "-", "+");
    assert.deepEqual(entries.map(([, fields]) => new Uint8Array(fields[1])), r.raw);
  } finally {
    await r.close();
  }
});

Deno.test("aggregator: two interleaved sensors stay apart; a 25 fps camera is thinned to --fps 10", async () => {
  const frames = (await realFrames()).slice(0, 100);
  const r = await rig(["--fps", "10", "--buffer-size", "20", "--overlap-size", "0"]);
  try {
    const t0 = 1769272125;
    for (let i = 0; i < 100; i++) {
      await r.send(image("fast25", t0 + i * 0.04, frames[i].jpeg, [960, 1280, 3])); // 25 fps over 4 s
      await r.send(image("real10", frames[i].t, frames[i].jpeg, [960, 1280, 3]));
    }
    await waitFor(
      () => r.segments.filter((s) => s.sensorName === "real10").length >= 5,
      30_000,
      "real10 segments",
    );
    await waitFor(
      () => r.segments.filter((s) => s.sensorName === "fast25").length >= 2,
      30_000,
      "fast25 segments",
    );
    const fast = r.segments.filter((s) => s.sensorName === "fast25");
    // The full ones (the last frames, decided at the idle flush, may make a short third).
    for (const s of fast.filter((s) => s.info!.flushReason === "full")) {
      const gaps = s.captureTimestamps.slice(1).map((t, k) => t - s.captureTimestamps[k]);
      const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
      assert.ok(Math.abs(mean - 0.1) < 0.01, `thinned to 10 fps: mean interval ${mean}`);
      const p = await probeMp4(s.video);
      assert.ok(Math.abs(p.duration - 2.0) < 0.1, `20 frames at 10 fps last 2 s, not 0.8 s: ${p.duration}`);
    }
    const realIds = new Set(r.segments.filter((s) => s.sensorName === "real10").flatMap((s) => s.frameIds));
    assert.ok(fast.every((s) => s.frameIds.every((id) => !realIds.has(id))), "no frame crosses sensors");
  } finally {
    await r.close();
  }
});

Deno.test("aggregator: idle, gap and resolution flushes; raw BGR input; odd sizes; duplicates not encoded twice", async () => {
  const frames = await realFrames();
  const odd = await ffmpegOut(["-i", `${FIX}frames/0000.jpg`, "-vf", "scale=641:481", "-f", "mjpeg"]);
  const raw = await ffmpegOut([
    "-i",
    `${FIX}frames/0001.jpg`,
    "-vf",
    "scale=320:240",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "bgr24",
  ]);
  const r = await rig([
    "--fps",
    "10",
    "--buffer-size",
    "100",
    "--overlap-size",
    "0",
    "--max-idle",
    "1",
    "--gap-threshold",
    "2",
  ]);
  try {
    let t = 1769000000;
    for (let i = 0; i < 5; i++) await r.send(image("c", t += 0.1, frames[i].jpeg, [960, 1280, 3]));
    await waitFor(() => r.segments.length === 1, 20_000, "idle flush").catch((e) => {
      throw new Error(`${e.message}\n${r.node.stderr.join("\n")}`);
    }); // nothing for --max-idle
    t += 10; // a 10 s outage
    for (let i = 0; i < 4; i++) await r.send(image("c", t += 0.1, frames[i].jpeg, [960, 1280, 3]));
    const dup = image("c", t += 0.1, frames[4].jpeg, [960, 1280, 3]);
    await r.send(dup);
    await r.send(dup); // same frame_id again
    t += 10;
    for (let i = 0; i < 3; i++) await r.send(image("c", t += 0.1, frames[i].jpeg, [960, 1280, 3])); // gap closes the 5
    for (let i = 0; i < 3; i++) await r.send(image("c", t += 0.1, odd, [481, 641, 3])); // resolution closes the 3
    for (let i = 0; i < 4; i++) await r.send(image("raw", 1769100000 + i * 0.1, raw, [240, 320, 3], false));
    await waitFor(() => r.segments.length === 5, 15_000, "five segments");
    const bySensor = (n: string) => r.segments.filter((s) => s.sensorName === n);
    assert.deepEqual(bySensor("c").map((s) => [s.info!.flushReason, s.frameIds.length]), [
      ["idle", 5],
      ["gap", 5],
      ["resolution", 3],
      ["idle", 3],
    ]);
    const oddProbe = await probeMp4(bySensor("c")[3].video);
    // 4:2:0 needs even sizes: the odd last row and column are cropped, never upscaled.
    assert.deepEqual([oddProbe.width, oddProbe.height, oddProbe.frames], [640, 480, 3]);
    const rawSeg = bySensor("raw")[0];
    const rawProbe = await probeMp4(rawSeg.video);
    assert.deepEqual([rawProbe.codec, rawProbe.width, rawProbe.height, rawProbe.frames], [
      "h264",
      320,
      240,
      4,
    ]);
    const metrics = r.node.stderr.join("\n");
    assert.match(metrics, /closing the segment of c early \(gap, 5 frames\)/);
  } finally {
    await r.close();
  }
});

Deno.test("aggregator: libx265 is tagged hvc1; h264_nvenc / hevc_nvenc without NVENC fall back to libx264 / libx265 with one warning, the first segment whole", async () => {
  const frames = (await realFrames()).slice(0, 12);
  const cases = [
    ["libx265", "hvc1", "hevc", false],
    ["h264_nvenc", "avc1", "h264", true],
    ["hevc_nvenc", "hvc1", "hevc", true],
  ] as const;
  for (const [codec, tag, name, warn] of cases) {
    // The node's own scoped permissions, as launched.
    const r = await rig(
      ["--fps", "10", "--buffer-size", "6", "--overlap-size", "0", "--codec", codec],
      ["--no-prompt", ...permissionFlags("aggregator")],
    );
    try {
      const sent = frames.map((f) => image("x", f.t, f.jpeg, [960, 1280, 3]));
      for (const m of sent) await r.send(m);
      await waitFor(() => r.segments.length >= 2, 30_000, `${codec} segments`);
      const p = await probeMp4(r.segments[0].video);
      assert.deepEqual([p.codec, p.tag, p.frames], [name, tag, 6], codec);
      // Nothing lost while NVENC failed to open: the first segment holds the first six frames.
      assert.deepEqual(r.segments[0].frameIds, sent.slice(0, 6).map((m) => m.frameId), codec);
      const warnings = r.node.stderr.filter((l) => / - WARNING :: /.test(l));
      assert.equal(warnings.length, warn ? 1 : 0, r.node.stderr.join("\n"));
      if (warn) assert.match(warnings[0], new RegExp(`WARNING :: ${codec} cannot be used`));
    } finally {
      await r.close();
    }
  }
});

Deno.test("aggregator: without --allow-run it encodes with ffmpeg.wasm, and the file is still right", async () => {
  const frames = (await realFrames()).slice(0, 8);
  const perms = permissionFlags("aggregator").filter((p) => !p.startsWith("--allow-run"));
  const r = await rig(["--fps", "10", "--buffer-size", "8", "--overlap-size", "0"], perms);
  try {
    await r.node.waitForLine(/with the ffmpeg.wasm backend \(no permission to run ffmpeg\)/);
    for (const f of frames) await r.send(image("w", f.t, f.jpeg, [960, 1280, 3]));
    await waitFor(() => r.segments.length === 1, 90_000, "a wasm segment");
    const s = r.segments[0];
    assert.equal(s.info!.encoder, "wasm:libx264");
    const p = await probeMp4(s.video);
    assert.deepEqual([p.codec, p.tag, p.pixFmt, p.width, p.height, p.frames], [
      "h264",
      "avc1",
      "yuv420p",
      1280,
      960,
      8,
    ]);
    const span = s.captureTimestamps.at(-1)! - s.captureTimestamps[0];
    assert.ok(Math.abs(p.duration - (span + 0.1)) < 0.11);
  } finally {
    await r.close();
  }
});

Deno.test("aggregator: bad flags exit 2 with one line", async () => {
  const env = { REDIS_URL: "redis://127.0.0.1:1/0", MSIGHT_EDGE_DEVICE_NAME: "d" };
  const cases: [string[], RegExp][] = [
    [
      ["--fps", "10", "--buffer-size", "10", "--overlap-size", "11"],
      /--overlap-size 11 is invalid: expected fewer than --buffer-size 10/,
    ],
    [
      ["--fps", "0", "--buffer-size", "10", "--overlap-size", "0"],
      /--fps 0 is invalid: expected a number > 0/,
    ],
    [
      ["--fps", "10", "--buffer-size", "10", "--overlap-size", "0", "--codec", "h265"],
      /--codec h265 is invalid: expected one of libx264, libx265, h264_nvenc, hevc_nvenc/,
    ],
    [["--fps", "10", "--overlap-size", "0"], /required: --buffer-size/],
  ];
  for (const [args, re] of cases) {
    const p = startNode("nodes/aggregator.ts", ["-n", "a", "-st", "s", "-pt", "p", ...args], env);
    assert.equal(await p.exit, 2, args.join(" "));
    assert.equal(p.stderr.length, 1, p.stderr.join("\n"));
    assert.match(p.stderr[0], re);
  }
});
