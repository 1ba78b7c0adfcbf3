// Unit tests of the capture's pure parts: frame splitting under any chunking, stderr parsing, the capture clock,
// the ffmpeg command line and the JPEG quality mapping.
import assert from "node:assert/strict";
import { JpegSplitter } from "../../src/capture/jpeg_splitter.ts";
import { ByteQueue } from "../../src/capture/byte_queue.ts";
import { classifyFfmpegLine, LineSplitter } from "../../src/capture/stderr.ts";
import { FrameClock } from "../../src/capture/clock.ts";
import {
  buildFfmpegArgs,
  decodedFormatFilter,
  frameReportFilters,
  jpegQualityToQscale,
  maskUrl,
  stripContext,
  validateRtspUrl,
} from "../../src/capture/ffmpeg_args.ts";
import { DropOldestQueue } from "../../src/capture/frame_queue.ts";
import { RtspCapture } from "../../src/capture/rtsp_capture.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";
import { UsageError } from "../../src/runtime/errors.ts";
import { seededRandom } from "../helpers/random.ts";

const FRAMES = new URL("../fixtures/mcity-gs-ne/frames/", import.meta.url);

async function ffmpegJpegs(n: number, size: string): Promise<Uint8Array[]> {
  const out = await new Deno.Command("ffmpeg", {
    args: [
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      `testsrc=s=${size}:r=10`,
      "-frames:v",
      String(n),
      "-c:v",
      "mjpeg",
    ]
      .concat(["-q:v", "2", "-f", "image2pipe", "pipe:1"]),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  // Cut by walking the structure independently: each image ends at the EOI that ends the stream or precedes SOI.
  const b = out.stdout;
  const images: Uint8Array[] = [];
  let start = 0;
  for (let i = 2; i + 3 < b.length; i++) {
    if (b[i] === 0xff && b[i + 1] === 0xd9 && b[i + 2] === 0xff && b[i + 3] === 0xd8) {
      images.push(b.slice(start, i + 2));
      start = i + 2;
    }
  }
  images.push(b.slice(start));
  assert.equal(images.length, n);
  return images;
}

/** A valid JPEG whose header segments contain FF D9 / FF D8 byte pairs (as a thumbnail or odd table would). */
function withTrickyHeader(jpeg: Uint8Array): Uint8Array {
  const payload = new Uint8Array([0xff, 0xd9, 0xff, 0xd8, 0x00, 0xff, 0xd9, 0x41]);
  const com = new Uint8Array([0xff, 0xfe, 0x00, payload.length + 2, ...payload]);
  const app1 = new Uint8Array([0xff, 0xe1, 0x00, 0x06, 0xff, 0xd8, 0xff, 0xd9]);
  return joinBytes([jpeg.subarray(0, 2), com, app1, jpeg.subarray(2)]);
}

function splitAll(stream: Uint8Array, cuts: (i: number) => number): Uint8Array[] {
  const s = new JpegSplitter();
  const out: Uint8Array[] = [];
  for (let pos = 0; pos < stream.length;) {
    const n = Math.max(1, cuts(pos));
    out.push(...s.push(stream.subarray(pos, pos + n)));
    pos += n;
  }
  return out;
}

Deno.test("JpegSplitter: same images at every chunk size 1..N", async () => {
  const small = await ffmpegJpegs(4, "32x24");
  const images = [...small, withTrickyHeader(small[0])];
  const stream = joinBytes(images);
  for (let size = 1; size <= stream.length; size++) {
    const got = splitAll(stream, () => size);
    assert.equal(got.length, images.length, `chunk size ${size}`);
    for (let i = 0; i < images.length; i++) {
      assert.deepEqual(got[i], images[i], `chunk size ${size}, image ${i}`);
    }
  }
});

Deno.test("JpegSplitter: stuffed FF and restart markers at every byte alignment stay inside the image", () => {
  // SOI, a minimal SOS header, then entropy data whose FF bytes (each stuffed with 00, or an RSTn) fall on every
  // position modulo 4 and 8 and in runs, and an EOI at every alignment: whatever stride a faster scan takes, no
  // byte may be missed.
  const sos = [0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00];
  const images: Uint8Array[] = [];
  for (let shift = 0; shift < 8; shift++) {
    const body: number[] = [];
    for (let k = 0; k < 40; k++) {
      for (let j = 0; j < (k + shift) % 9; j++) body.push((k * 31 + j) % 0xfe); // never FF
      body.push(0xff, k % 5 === 0 ? 0xd0 + (k % 8) : 0x00);
    }
    body.push(0xff, 0x00, 0xff, 0x00, 0xff, 0x00); // a run
    // A stretch without FF, so that EOI falls on every alignment of a word scanned whole.
    for (let j = 0; j < 9 + shift; j++) body.push(0x11);
    images.push(new Uint8Array([0xff, 0xd8, ...sos, ...body, 0xff, 0xd9]));
  }
  const stream = joinBytes(images);
  for (const size of [1, 3, 4, 5, 7, 64, stream.length]) {
    assert.deepEqual(splitAll(stream, () => size), images, `chunk size ${size}`);
  }
});

Deno.test("JpegSplitter: real camera frames under random splits, garbage and truncation", async () => {
  const real = await Promise.all(
    ["0000", "0001", "0002", "0100"].map((n) => Deno.readFile(new URL(`${n}.jpg`, FRAMES))),
  );
  const small = await ffmpegJpegs(3, "64x48");
  const images = [real[0], small[0], real[1], withTrickyHeader(real[2]), small[1], real[3], small[2]];
  const stream = joinBytes(images);
  for (let seed = 1; seed <= 40; seed++) {
    const r = seededRandom(seed);
    const got = splitAll(stream, () => 1 + Math.floor(r() * (r() < 0.5 ? 16 : 70000)));
    assert.equal(got.length, images.length, `seed ${seed}`);
    got.forEach((g, i) => assert.deepEqual(g, images[i], `seed ${seed}, image ${i}`));
  }
  // Leading garbage (even FF bytes) and a truncated image are skipped; the following images survive.
  const s = new JpegSplitter();
  const truncated = real[0].subarray(0, 30000);
  const got = [
    ...s.push(new Uint8Array([0x00, 0xff, 0xff, 0x12, 0xff])),
    ...s.push(joinBytes([truncated, small[0], small[1]])),
  ];
  assert.deepEqual(got, [small[0], small[1]]);
  assert.ok(s.corruptFrames >= 1);
  assert.ok(s.skippedBytes >= 5 + truncated.length - 2);
  assert.equal(s.pendingBytes, 0);
});

Deno.test("JpegSplitter: an image that never ends is dropped at maxFrameBytes", async () => {
  const [img] = await ffmpegJpegs(1, "32x24");
  const s = new JpegSplitter({ maxFrameBytes: 4096 });
  // SOI + SOS header then endless entropy data.
  const sos = img.indexOf(0xda, 2) - 1;
  const head = img.subarray(0, sos + 2 + ((img[sos + 2] << 8) | img[sos + 3]));
  assert.deepEqual(s.push(head), []);
  for (let i = 0; i < 10; i++) assert.deepEqual(s.push(new Uint8Array(1000).fill(0x55)), []);
  assert.equal(s.corruptFrames, 1);
  assert.deepEqual(s.push(img), [img]);
});

Deno.test("ByteQueue: exact-size raw frames under any chunking", () => {
  const frame = 7 * 5 * 3;
  const stream = Uint8Array.from({ length: frame * 6 }, (_, i) => i % 251);
  for (let size = 1; size <= stream.length; size++) {
    const q = new ByteQueue();
    const got: Uint8Array[] = [];
    for (let pos = 0; pos < stream.length; pos += size) {
      q.push(stream.slice(pos, pos + size));
      for (let f = q.take(frame); f; f = q.take(frame)) got.push(f);
    }
    assert.equal(got.length, 6, `chunk ${size}`);
    got.forEach((f, i) => assert.deepEqual(f, stream.subarray(i * frame, (i + 1) * frame)));
    assert.equal(q.size, 0);
  }
});

Deno.test("LineSplitter + classifyFfmpegLine: showinfo, CUDA failures, decode errors", () => {
  const text = "[Parsed_showinfo_1 @ 0x55d] n:  12 pts:1200000 pts_time:1.2     pos:       -1 fmt:bgr24 " +
    "sar:1/1 s:640x480 i:P iskey:0 type:P \n" +
    "[AVHWDeviceContext @ 0x55ab164be540] Cannot load libcuda.so.1\r\n" +
    "[h264 @ 0x5581] concealing 2400 DC, 2400 AC, 2400 MV errors in I frame\n" +
    "[h264 @ 0x5581] error while decoding MB 10 20, bytestream -5\n" +
    "rtsp://127.0.0.1:1/x: Connection refused\n" +
    "frame=   22 fps=0.0 q=-0.0 size=N/A\r" +
    "unfinished";
  const bytes = new TextEncoder().encode(text);
  const ls = new LineSplitter();
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 7) lines.push(...ls.push(bytes.subarray(i, i + 7)));
  lines.push(...ls.flush());
  assert.equal(lines.length, 7);
  assert.deepEqual(classifyFfmpegLine(lines[0]), { kind: "size", width: 640, height: 480 });
  assert.equal(classifyFfmpegLine(lines[1]).kind, "hwaccel-error");
  assert.equal(classifyFfmpegLine(lines[2]).kind, "decode-error");
  assert.equal(classifyFfmpegLine(lines[3]).kind, "decode-error");
  assert.equal(classifyFfmpegLine(lines[4]).kind, "error");
  assert.equal(classifyFfmpegLine(lines[5]).kind, "other");
  assert.equal(lines[6], "unfinished");
  for (
    const l of [
      "Device creation failed: -1.",
      "Device setup failed for decoder on input stream #0:0 : Operation not permitted",
      "[h264 @ 0x1] No device available for decoder: device type cuda needed for codec h264.",
    ]
  ) assert.equal(classifyFfmpegLine(l).kind, "hwaccel-error", l);
  assert.deepEqual(
    classifyFfmpegLine("[Parsed_showinfo_0 @ 0x1] n: 0 pts:NOPTS pts_time:NOPTS pos: -1 s:2x2 i:P"),
    { kind: "size", width: 2, height: 2 },
  );
  assert.equal(
    stripContext("[AVHWDeviceContext @ 0x55ab] Cannot load libcuda.so.1"),
    "Cannot load libcuda.so.1",
  );
});

Deno.test("classifyFfmpegLine: the metadata filter's frame reports, exact past pts_time's six digits", () => {
  // What ffmpeg 5.1's metadata filter prints (pts_time is rounded to 6 significant digits; pts is exact µs).
  assert.deepEqual(classifyFfmpegLine("frame:12   pts:1763780000123456 pts_time:1.76378e+09"), {
    kind: "report",
    us: 1763780000123456,
  });
  assert.deepEqual(classifyFfmpegLine("frame:0    pts:0       pts_time:0"), { kind: "report", us: 0 });
  assert.ok(Number.isNaN((classifyFfmpegLine("frame:3 pts:NOPTS pts_time:NOPTS") as { us: number }).us));
  assert.deepEqual(classifyFfmpegLine("edge_pts=1"), { kind: "report-key", key: "pts" });
  assert.deepEqual(classifyFfmpegLine("edge_clock=1"), { kind: "report-key", key: "clock" });
  // Another thread's log line written in pieces may land in front of a report.
  assert.deepEqual(classifyFfmpegLine("[h264 @ 0x1] frame:7    pts:700000  pts_time:0.7"), {
    kind: "report",
    us: 700000,
  });
  // ffmpeg's own progress line is not a report.
  assert.equal(classifyFfmpegLine("frame=   22 fps=0.0 q=-0.0 size=N/A time=00:00:01.00").kind, "other");
});

Deno.test("FrameClock: follows pts, removes arrival jitter, never later than arrival, monotonic", () => {
  const clock = new FrameClock();
  const r = seededRandom(7);
  const base = 1_700_000_000;
  let prev = -Infinity;
  const out: number[] = [];
  for (let i = 0; i < 300; i++) {
    const pts = 5 + i * 0.1;
    // Transit delay 20 ms plus up to 80 ms of jitter; every 10th frame arrives with no extra delay.
    const arrival = base + i * 0.1 + 0.02 + (i % 10 === 0 ? 0 : r() * 0.08);
    const t = clock.stamp(pts, arrival);
    assert.ok(t <= arrival + 1e-9, `frame ${i} stamped after its arrival`);
    assert.ok(t > prev);
    prev = t;
    out.push(t);
  }
  // The spacing is the stream's own 100 ms (give or take the 1000 ppm drift allowance, 1 ms over 1 s), not the
  // jitter of up to 80 ms.
  for (let i = 1; i < out.length; i++) assert.ok(Math.abs(out[i] - out[i - 1] - 0.1) < 1.1e-3, `gap ${i}`);
  assert.ok(Math.abs(out[50] - (base + 5 + 0.02)) < 1e-6);
  assert.equal(clock.reanchors, 0);
});

Deno.test("FrameClock (defaults): decoding falling 1.8 s behind over 8 s and catching up keeps the stream's spacing", () => {
  const clock = new FrameClock();
  const base = 1763780000;
  const out: number[] = [];
  for (let i = 0; i < 750; i++) {
    const pts = i * 0.04; // 25 fps
    // From 5 s to 13 s of stream the machine is saturated: frames leave the decoder up to 1.8 s late, then the
    // backlog drains until they are on time again.
    const behind = pts < 5 ? 0 : pts < 9 ? (pts - 5) * 0.45 : pts < 13 ? 1.8 - (pts - 9) * 0.45 : 0;
    out.push(clock.stamp(pts, base + pts + 0.01 + behind));
  }
  assert.equal(clock.reanchors, 0, "a backlog that drains is not a new timeline");
  // The stream's 40 ms, give or take the drift allowance (1000 ppm of the 8 s of backlog: 8 ms, once, at its end).
  for (let i = 1; i < out.length; i++) assert.ok(Math.abs(out[i] - out[i - 1] - 0.04) < 9e-3, `gap at ${i}`);
  // What re-anchoring on the late arrivals did before: a second's jump ahead, then catch-up frames 1 µs apart.
  const old = new FrameClock({ maxLagS: 1, settleS: 2 });
  const stamped: number[] = [];
  for (let i = 0; i < 750; i++) {
    const pts = i * 0.04;
    const behind = pts < 5 ? 0 : pts < 9 ? (pts - 5) * 0.45 : pts < 13 ? 1.8 - (pts - 9) * 0.45 : 0;
    stamped.push(old.stamp(pts, base + pts + 0.01 + behind));
  }
  assert.ok(old.reanchors > 0);
  assert.ok(Math.max(...stamped.slice(1).map((t, i) => t - stamped[i])) > 0.5, "the jump the defaults avoid");
});

Deno.test("FrameClock: bursts, slow camera clock, pts going back, a pause, and a new session", () => {
  const clock = new FrameClock({ maxLagS: 0.5, settleS: 1 });
  let prev = -Infinity;
  const stamp = (pts: number, arrival: number) => {
    const t = clock.stamp(pts, arrival);
    assert.ok(t > prev, `not increasing at pts ${pts}`);
    assert.ok(t <= arrival + 1e-3);
    prev = t;
    return t;
  };
  // A burst: ten frames arriving at the same instant.
  for (let i = 0; i < 10; i++) stamp(i * 0.1, 100);
  // Camera clock 0.05 % slow: pts advance 0.9995 s per wall second; the lag stays bounded.
  let last = 0;
  for (let i = 10; i < 2000; i++) last = stamp(i * 0.1 * 0.9995, 100 + (i - 9) * 0.1);
  assert.ok(100 + 1990 * 0.1 - last < 0.2, `lag ${100 + 1990 * 0.1 - last}`);
  // pts jumps back (the source restarted its timeline): re-anchored, still increasing.
  const before = clock.reanchors;
  stamp(0, 400);
  assert.equal(clock.reanchors, before + 1);
  // The source paused for 5 s without advancing pts: re-anchored once the lag persisted for settleS.
  for (let i = 1; i <= 5; i++) stamp(i * 0.1, 400 + i * 0.1);
  for (let i = 6; i <= 30; i++) stamp(i * 0.1, 405 + i * 0.1);
  assert.equal(clock.reanchors, before + 2);
  assert.ok(Math.abs(prev - (405 + 3.0)) < 1e-3);
  // New session: pts restart from 0, arrival times continue.
  clock.reset();
  assert.ok(Math.abs(stamp(0, 410) - 410) < 1e-9);
  // Unknown pts: stamped with the arrival.
  assert.ok(Math.abs(stamp(NaN, 411) - 411) < 1e-9);
});

Deno.test("buildFfmpegArgs: transport, timeout, CUDA, resize, JPEG and raw outputs", () => {
  const jpeg = buildFfmpegArgs({
    url: "rtsp://cam/live",
    transport: "udp",
    timeoutS: 2.5,
    format: "jpeg",
    jpegQuality: 50,
    resizeRatio: 0.5,
    cudaDevice: 1,
  });
  const after = (a: string[], flag: string) => a[a.indexOf(flag) + 1];
  assert.equal(after(jpeg, "-rtsp_transport"), "udp");
  assert.equal(after(jpeg, "-timeout"), "2500000");
  assert.equal(after(jpeg, "-hwaccel"), "cuda");
  assert.equal(after(jpeg, "-hwaccel_device"), "1");
  assert.ok(jpeg.indexOf("-hwaccel") < jpeg.indexOf("-i"), "hwaccel is an input option");
  assert.equal(after(jpeg, "-i"), "rtsp://cam/live");
  const jpegReports = frameReportFilters().join(",");
  assert.equal(
    after(jpeg, "-vf"),
    `${jpegReports},${
      decodedFormatFilter(false)
    },scale=w='max(2,trunc(iw*0.5/2)*2)':h='max(2,trunc(ih*0.5/2)*2)',setpts=N`,
    "reported before scaling (the clock report is the arrival), CUDA's NV12 turned into the CPU decoder's " +
      "format, the encoder's pts replaced last",
  );
  assert.equal(
    jpegReports,
    "settb=1/1000000,metadata=mode=add:key=edge_pts:value=1,metadata=mode=print:key=edge_pts:file='pipe\\:2':direct=1," +
      "setpts=RTCTIME,metadata=mode=add:key=edge_clock:value=1,metadata=mode=print:key=edge_clock:file='pipe\\:2':direct=1",
  );
  assert.equal(after(jpeg, "-c:v"), "mjpeg");
  assert.equal(after(jpeg, "-q:v"), "9");
  assert.equal(after(jpeg, "-huffman"), "default", "standard tables, as libjpeg/OpenCV");
  const threads = jpeg.flatMap((a, i) => a === "-threads" ? [[i, jpeg[i + 1]] as const] : []);
  assert.deepEqual(threads.map(([, n]) => n), ["1", "1"], "one decoder thread, one encoder thread");
  assert.ok(
    threads[0][0] < jpeg.indexOf("-i") && threads[1][0] > jpeg.indexOf("-i"),
    "decoder's, then encoder's",
  );
  assert.equal(after(jpeg, "-filter_threads"), "1");
  assert.equal(
    after(
      buildFfmpegArgs({
        url: "rtsp://cam/x",
        transport: "tcp",
        timeoutS: 5,
        format: "jpeg",
        decoderThreads: 0,
      }),
      "-threads",
    ),
    "0",
    "0: ffmpeg's own choice",
  );
  assert.equal(after(jpeg, "-f"), "image2pipe");
  assert.equal(jpeg.at(-1), "pipe:1");
  const raw = buildFfmpegArgs({ url: "rtsps://cam/live", transport: "tcp", timeoutS: 5, format: "bgr24" });
  assert.equal(after(raw, "-rtsp_transport"), "tcp");
  assert.ok(!raw.includes("-hwaccel"));
  assert.equal(
    after(raw, "-vf"),
    `${jpegReports},showinfo=checksum=0,setpts=N`,
    "raw frames also need their size: showinfo, after any scaling",
  );
  assert.equal(after(raw, "-pix_fmt"), "bgr24");
  assert.equal(after(raw, "-f"), "rawvideo");
  // Full-size JPEG from a limited-range yuv420p camera: the range is expanded by a table, not by swscale.
  const lut = buildFfmpegArgs({
    url: "rtsp://cam/live",
    transport: "tcp",
    timeoutS: 5,
    format: "jpeg",
    limitedYuv420: true,
  });
  assert.match(
    after(lut, "-vf"),
    /direct=1,lutyuv=y='clip\(\(val-16\)\*255\/219,0,255\)'.*,setparams=range=pc,setpts=N$/,
  );
  assert.equal(after(lut, "-pix_fmt"), "yuv420p");
  // Scaled, or raw: swscale converts anyway, in the same pass.
  for (const o of [{ format: "jpeg" as const, resizeRatio: 0.5 }, { format: "bgr24" as const }]) {
    const a = buildFfmpegArgs({
      url: "rtsp://cam/live",
      transport: "tcp",
      timeoutS: 5,
      limitedYuv420: true,
      ...o,
    });
    assert.ok(!after(a, "-vf").includes("lutyuv"), JSON.stringify(o));
  }
  assert.equal(after(jpeg, "-pix_fmt"), "yuvj420p");
});

Deno.test("classifyFfmpegLine: the pixel format and range of a stream dump line", () => {
  const cases: [string, string, string][] = [
    [
      "  Stream #0:0: Video: h264 (Constrained Baseline), yuv420p(progressive), 1280x960, 10 fps, 90k tbn",
      "yuv420p",
      "",
    ],
    [
      "    Stream #0:0(und): Video: h264 (High) (avc1 / 0x31637661), yuvj420p(pc, bt709, progressive), 1280x720",
      "yuvj420p",
      "pc",
    ],
    ["  Stream #0:0: Video: hevc (Main), yuv420p(tv, bt709), 1920x1080, 25 tbr", "yuv420p", "tv"],
    [
      "  Stream #0:0: Video: mjpeg (Baseline), yuvj422p(pc, bt470bg/unknown/unknown), 640x480",
      "yuvj422p",
      "pc",
    ],
  ];
  for (const [line, pixFmt, range] of cases) {
    assert.deepEqual(classifyFfmpegLine(line), { kind: "video-stream", pixFmt, range }, line);
  }
  assert.equal(classifyFfmpegLine("  Stream #0:1: Audio: aac (LC), 48000 Hz, mono").kind, "other");
});

Deno.test("jpegQualityToQscale: MSight's 50 maps to 9, monotonic, range checked", () => {
  assert.equal(jpegQualityToQscale(50), 9);
  assert.equal(jpegQualityToQscale(100), 1);
  assert.equal(jpegQualityToQscale(1), 31);
  let prev = 31;
  for (let q = 1; q <= 100; q++) {
    const s = jpegQualityToQscale(q);
    assert.ok(s >= 1 && s <= 31 && s <= prev, `${q} -> ${s}`);
    prev = s;
  }
  assert.throws(() => jpegQualityToQscale(0), UsageError);
  assert.throws(() => jpegQualityToQscale(101), UsageError);
});

Deno.test("validateRtspUrl / maskUrl: rtsp(s) only, one-line errors without credentials", () => {
  assert.equal(validateRtspUrl("rtsp://10.0.0.5:554/stream1"), "rtsp://10.0.0.5:554/stream1");
  validateRtspUrl("rtsps://user:pw@cam.example/live");
  for (const bad of ["http://cam/x", "cam/x", "rtsp:/x", "rtsp://", "", "file:///etc/passwd"]) {
    assert.throws(() => validateRtspUrl(bad), UsageError, bad);
  }
  const err = assert.throws(() => validateRtspUrl("http://admin:s3cret@cam/x"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.exitCode, 2);
    assert.ok(!e.message.includes("s3cret"));
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  assert.equal(err, undefined);
  assert.equal(maskUrl("rtsp://admin:s3cret@cam/live"), "rtsp://***:***@cam/live");
});

Deno.test("DropOldestQueue: drops the oldest when full, ends on close, rethrows a failure", async () => {
  const q = new DropOldestQueue<number>(2);
  q.push(1);
  q.push(2);
  q.push(3);
  assert.equal(q.dropped, 1);
  const waiting = (async () => {
    const got: number[] = [];
    for await (const n of q) got.push(n);
    return got;
  })();
  await new Promise((r) => setTimeout(r, 1));
  q.push(4);
  q.close();
  assert.deepEqual(await waiting, [2, 3, 4]);
  const f = new DropOldestQueue<number>(1);
  const next = f.next();
  f.fail(new Error("boom"));
  await assert.rejects(next, /boom/);
});

Deno.test("RtspCapture: --decoder-threads must be an integer >= 0, one line naming the value", () => {
  for (const bad of [-1, 1.5, NaN]) {
    assert.throws(
      () => new RtspCapture({ url: "rtsp://cam/x", decoderThreads: bad }),
      (e: unknown) =>
        e instanceof UsageError && /^invalid --decoder-threads \S+: expected an integer >= 0/.test(e.message),
      String(bad),
    );
  }
  // Valid values construct (nothing starts before start()).
  for (const ok of [0, 1, 8]) new RtspCapture({ url: "rtsp://cam/x", decoderThreads: ok });
});
