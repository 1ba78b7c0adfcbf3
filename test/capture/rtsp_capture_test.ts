// The capture against a real GStreamer RTSP server on loopback: frame shape and content, timestamps and rate, TCP
// and UDP, CUDA fallback, error handling, and that stop() leaves no ffmpeg behind.
import assert from "node:assert/strict";
import { type CapturedFrame, type CaptureEvent, RtspCapture } from "../../src/capture/rtsp_capture.ts";
import { FatalError, UsageError } from "../../src/runtime/errors.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { freePort } from "../helpers/net.ts";

/** Takes `n` frames, failing after `timeoutMs` (the message names the capture's last `events`, when given). */
async function take(
  cap: RtspCapture,
  n: number,
  timeoutMs: number,
  events: CaptureEvent[] = [],
): Promise<CapturedFrame[]> {
  const frames: CapturedFrame[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `only ${frames.length}/${n} frames after ${timeoutMs} ms: ${
              JSON.stringify(cap.stats())
            }; last events: ` +
              events.slice(-6).map((e) => JSON.stringify(e)).join(", "),
          ),
        ),
      timeoutMs,
    );
  });
  try {
    while (frames.length < n) {
      const f = await Promise.race([cap.next(), timeout]);
      if (!f) throw new Error("capture ended");
      frames.push(f);
    }
    return frames;
  } finally {
    clearTimeout(timer);
  }
}

function recorder(): { events: CaptureEvent[]; onEvent: (e: CaptureEvent) => void } {
  const events: CaptureEvent[] = [];
  return { events, onEvent: (e) => events.push(e) };
}

function uniquePath(tag: string): string {
  return `/cap-${tag}-${crypto.randomUUID().slice(0, 8)}`;
}

async function ffmpegRunning(marker: string): Promise<boolean> {
  const out = await new Deno.Command("pgrep", { args: ["-f", `ffmpeg .*${marker}`], stdout: "null" })
    .output();
  return out.code === 0;
}

/** Decodes a JPEG with ffmpeg: returns its size, failing on any decoder complaint. */
async function decodeJpeg(jpeg: Uint8Array): Promise<{ width: number; height: number }> {
  const path = await Deno.makeTempFile({ suffix: ".jpg" });
  try {
    await Deno.writeFile(path, jpeg);
    const probe = await new Deno.Command("ffprobe", {
      args: [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "json",
      ]
        .concat([path]),
    }).output();
    assert.ok(probe.success);
    const stream = JSON.parse(new TextDecoder().decode(probe.stdout)).streams[0];
    assert.equal(stream.codec_name, "mjpeg");
    const dec = await new Deno.Command("ffmpeg", { args: ["-v", "error", "-i", path, "-f", "null", "-"] })
      .output();
    assert.ok(dec.success);
    assert.equal(new TextDecoder().decode(dec.stderr).trim(), "", "decoder errors");
    return { width: stream.width, height: stream.height };
  } finally {
    await Deno.remove(path);
  }
}

function assertTimestamps(frames: CapturedFrame[], fps: number): void {
  const now = Date.now() / 1000;
  for (let i = 1; i < frames.length; i++) {
    assert.ok(frames[i].captureTime > frames[i - 1].captureTime, `captureTime not increasing at ${i}`);
    assert.equal(frames[i].index, frames[i - 1].index + 1);
  }
  const last = frames.at(-1) as CapturedFrame;
  assert.ok(last.captureTime <= now && last.captureTime > now - 10, "captureTime is recent wall-clock time");
  // Rate from capture times and from pts: both follow the stream's own clock.
  const span = last.captureTime - frames[0].captureTime;
  const rate = (frames.length - 1) / span;
  assert.ok(Math.abs(rate - fps) / fps < 0.15, `rate ${rate.toFixed(2)} fps, expected ${fps}`);
  const ptsSpan = last.pts - frames[0].pts;
  assert.ok(Math.abs(ptsSpan - span) < 0.25, `pts span ${ptsSpan} vs capture span ${span}`);
}

Deno.test("mcity camera over TCP: 1280x960 JPEG frames that decode, increasing times at 10 fps", async () => {
  const server = await startRtspServer({ source: "mcity", path: uniquePath("mcity") });
  const { events, onEvent } = recorder();
  const cap = new RtspCapture({ url: server.url, transport: "tcp", onEvent });
  try {
    await cap.start();
    const frames = await take(cap, 25, 15000);
    for (const f of frames) {
      assert.equal(f.format, "jpeg");
      assert.equal(f.width, 1280);
      assert.equal(f.height, 960);
      assert.deepEqual([f.data[0], f.data[1], f.data.at(-2), f.data.at(-1)], [0xff, 0xd8, 0xff, 0xd9]);
    }
    assert.deepEqual(await decodeJpeg(frames[3].data), { width: 1280, height: 960 });
    assert.deepEqual(await decodeJpeg(frames[24].data), { width: 1280, height: 960 });
    assertTimestamps(frames, 10);
    // The capture time is when the frame left ffmpeg's decoder (ffmpeg's clock), so it precedes its arrival here
    // by about the JPEG encoding and the pipe: a frame or two on an idle machine, over a second on a loaded one
    // (1.3 s seen with both cores busy). Only the sign and a loose bound are asserted; `deno task bench source`
    // measures the lag itself.
    const lag = Date.now() / 1000 - (frames.at(-1) as CapturedFrame).captureTime;
    assert.ok(lag >= 0 && lag < 5, `last frame received ${lag.toFixed(3)} s after its capture time`);
    const stats = cap.stats();
    assert.equal(stats.state, "streaming");
    assert.equal(stats.reconnects, 0);
    assert.equal(stats.decodeErrors, 0);
    assert.equal(stats.unpaired, 0, "every frame paired with its reports");
    assert.ok(stats.framesReceived >= 25);
    assert.deepEqual(events.map((e) => e.type), ["connecting", "streaming"]);
  } finally {
    await cap.stop();
    await server.stop();
  }
  assert.equal(events.at(-1)?.type, "stopped");
});

Deno.test("synthetic camera over UDP, raw BGR resized by 0.5: 640x360 pixels, red is R, 25 fps", async () => {
  const server = await startRtspServer({
    source: "synthetic",
    width: 1280,
    height: 720,
    fps: 25,
    pattern: "red",
  });
  const cap = new RtspCapture({ url: server.url, transport: "udp", format: "bgr24", resizeRatio: 0.5 });
  try {
    await cap.start();
    const frames = await take(cap, 40, 15000);
    for (const f of frames) {
      assert.equal(f.format, "bgr24");
      assert.equal(f.width, 640);
      assert.equal(f.height, 360);
      assert.equal(f.data.length, 640 * 360 * 3);
    }
    const px = (180 * 640 + 320) * 3;
    const [b, g, r] = frames[20].data.subarray(px, px + 3);
    assert.ok(b < 30 && g < 30 && r > 220, `BGR order: got b=${b} g=${g} r=${r}`);
    assertTimestamps(frames.slice(5), 25);
    assert.equal(cap.stats().unpaired, 0, "every frame paired with its reports and size");
  } finally {
    await cap.stop();
    await server.stop();
  }
});

Deno.test("one server, a TCP and a UDP client at once (non-shared media)", async () => {
  const server = await startRtspServer({ source: "synthetic", width: 320, height: 240, fps: 25 });
  const tcp = new RtspCapture({ url: server.url, transport: "tcp" });
  const udp = new RtspCapture({ url: server.url, transport: "udp" });
  try {
    await Promise.all([tcp.start(), udp.start()]);
    const [a, b] = await Promise.all([take(tcp, 20, 15000), take(udp, 20, 15000)]);
    assert.equal(a[0].width, 320);
    assert.equal(b[0].height, 240);
  } finally {
    await Promise.all([tcp.stop(), udp.stop()]);
    await server.stop();
  }
});

Deno.test("--gpu 0 without a usable GPU: one CUDA warning, frames decoded on the CPU", async () => {
  const server = await startRtspServer({ source: "synthetic", width: 320, height: 240, fps: 25 });
  const { events, onEvent } = recorder();
  const cap = new RtspCapture({ url: server.url, gpu: 0, onEvent });
  try {
    await cap.start();
    const frames = await take(cap, 5, 15000);
    assert.equal(frames[0].width, 320);
    const cuda = events.filter((e) => e.type === "cuda-unavailable");
    const probe = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-init_hw_device", "cuda=x:0", "-f", "lavfi", "-i", "nullsrc", "-frames:v", "1"]
        .concat(["-f", "null", "-"]),
    }).output();
    if (probe.success) {
      // This machine has a working GPU: CUDA decode must have been used.
      assert.equal(cuda.length, 0);
      assert.equal(cap.stats().cuda, true);
    } else {
      assert.equal(cuda.length, 1);
      assert.match(JSON.stringify(cuda[0]), /libcuda|CUDA|Device/);
      assert.equal(cap.stats().cuda, false);
      assert.equal(cap.stats().reconnects, 0);
    }
  } finally {
    await cap.stop();
    await server.stop();
  }
});

Deno.test("CUDA failing only when decoding starts: detected on stderr, restarted on the CPU, warned once", async () => {
  // An ffmpeg whose CUDA probe succeeds, so the failure surfaces in the capture session's stderr.
  const dir = await Deno.makeTempDir();
  const wrapper = `${dir}/ffmpeg`;
  await Deno.writeTextFile(
    wrapper,
    `#!/bin/sh\ncase "$*" in *-init_hw_device*) exit 0;; esac\nexec ffmpeg "$@"\n`,
  );
  await Deno.chmod(wrapper, 0o755);
  const server = await startRtspServer({ source: "synthetic", width: 320, height: 240, fps: 25 });
  const { events, onEvent } = recorder();
  const cap = new RtspCapture({ url: server.url, gpu: 0, ffmpegPath: wrapper, onEvent });
  try {
    await cap.start();
    assert.equal(cap.stats().cuda, true);
    await take(cap, 5, 15000);
    assert.equal(events.filter((e) => e.type === "cuda-unavailable").length, 1);
    const connects = events.filter((e) => e.type === "connecting");
    assert.deepEqual(connects.map((e) => e.type === "connecting" && e.cuda), [true, false]);
    assert.equal(events.filter((e) => e.type === "retrying").length, 0, "no backoff for the CPU switch");
    assert.equal(cap.stats().cuda, false);
  } finally {
    await cap.stop();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad URL and bad options: UsageError (exit 2) at construction, credentials masked", () => {
  for (const url of ["http://cam/live", "rtsp//cam", "", "rtsp://"]) {
    assert.throws(() => new RtspCapture({ url }), UsageError, url);
  }
  assert.throws(() => new RtspCapture({ url: "ftp://u:topsecret@h/x" }), (e: unknown) => {
    assert.ok(e instanceof UsageError && e.exitCode === 2 && !e.message.includes("topsecret"));
    return true;
  });
  assert.throws(() => new RtspCapture({ url: "rtsp://h/x", gpu: -2 }), UsageError);
  assert.throws(() => new RtspCapture({ url: "rtsp://h/x", jpegQuality: 0 }), UsageError);
  assert.throws(() => new RtspCapture({ url: "rtsp://h/x", resizeRatio: 0 }), UsageError);
  assert.throws(() => new RtspCapture({ url: "rtsp://h/x", stallTimeoutS: -1 }), UsageError);
  assert.equal(new RtspCapture({ url: "rtsp://admin:pw123@h/x" }).maskedUrl, "rtsp://***:***@h/x");
});

Deno.test("missing ffmpeg: start() throws FatalError with exit code 2 and one line", async () => {
  const cap = new RtspCapture({ url: "rtsp://127.0.0.1:9/x", ffmpegPath: "/nonexistent/bin/ffmpeg" });
  const err = await cap.start().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof FatalError, String(err));
  assert.equal(err.exitCode, 2);
  assert.match(err.message, /not found/);
  assert.ok(!err.message.includes("\n"));
  await cap.stop();
});

Deno.test("unreachable camera: retried forever with growing backoff, state changes reported once each", async () => {
  // A port that refuses connections: freePort binds one, notes it and closes it.
  const port = freePort();
  const { events, onEvent } = recorder();
  const cap = new RtspCapture({ url: `rtsp://u:pw@127.0.0.1:${port}/x`, backoffInitialS: 0.1, onEvent });
  try {
    await cap.start();
    const deadline = Date.now() + 10000;
    while (events.filter((e) => e.type === "retrying").length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await cap.stop();
  }
  const retries = events.flatMap((e) => e.type === "retrying" ? [e] : []);
  assert.ok(retries.length >= 4, JSON.stringify(events));
  assert.match(retries[0].reason, /refused/i);
  for (let i = 1; i < 4; i++) assert.ok(retries[i].delayS > retries[i - 1].delayS, "backoff grows");
  assert.ok(events.every((e) => !JSON.stringify(e).includes("pw")), "credentials masked");
  // Alternating connecting / retrying: each state change reported once.
  const types = events.map((e) => e.type).filter((t) => t === "connecting" || t === "retrying");
  types.forEach((t, i) => assert.equal(t, i % 2 === 0 ? "connecting" : "retrying"));
  assert.equal(cap.stats().reconnects, retries.length);
});

Deno.test("stop() terminates ffmpeg and waits for it: no ffmpeg process left", async () => {
  const path = uniquePath("stop");
  const server = await startRtspServer({ source: "synthetic", width: 320, height: 240, fps: 25, path });
  const cap = new RtspCapture({ url: server.url });
  try {
    await cap.start();
    await take(cap, 3, 15000);
    const pid = cap.stats().ffmpegPid;
    assert.ok(pid !== undefined);
    assert.ok(await ffmpegRunning(path));
    await cap.stop();
    assert.equal(await ffmpegRunning(path), false);
    assert.equal(await Deno.stat(`/proc/${pid}`).then(() => true, () => false), false);
    assert.equal(await cap.next(), undefined, "iteration ends after stop");
    await cap.stop(); // idempotent
  } finally {
    await cap.stop();
    await server.stop();
  }
});

// Both file cameras loop with a segment seek made before the server answers DESCRIBE; made later, it raced the
// client's PLAY and aborted the server for about one client in four.
for (const source of ["file", "h264file"] as const) {
  Deno.test(`a user's video file served looped (demo server, ${source}): frames continue past its end`, async () => {
    const dir = await Deno.makeTempDir();
    const clip = `${dir}/clip.mp4`;
    const made = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-f", "lavfi", "-i", "testsrc=s=320x240:r=25", "-t", "1", "-c:v", "libx264"]
        .concat(["-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", clip]),
    }).output();
    assert.ok(made.success);
    const server = await startRtspServer({ source, file: clip, fps: 25 });
    try {
      // Three clients one after another, each on a fresh pipeline: each gets its own first seek.
      for (let client = 0; client < 3; client++) {
        const cap = new RtspCapture({ url: server.url });
        try {
          await cap.start();
          const frames = await take(cap, 45, 15000); // 1.8 s of stream from a 1 s file
          // The server repeats a timestamp where the file loops, as some cameras do: ffmpeg must not choke on it.
          for (let i = 1; i < frames.length; i++) {
            assert.ok(frames[i].pts >= frames[i - 1].pts, "pts keep increasing");
          }
          assertTimestamps(frames, 25);
          assert.equal(cap.stats().reconnects, 0);
        } finally {
          await cap.stop();
        }
      }
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** A 10 s, 10 fps H.264 clip of one real camera frame, in `pixFmt` (`yuv420p`: limited range, `yuvj420p`: full). */
async function stillClip(dir: string, pixFmt: string): Promise<string> {
  const clip = `${dir}/still-${pixFmt}.mp4`;
  const made = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-loop", "1", "-framerate", "10", "-t", "10", "-i", STILL, "-c:v", "libx264"]
      .concat(["-preset", "ultrafast", "-crf", "12", "-g", "10", "-bf", "0", "-pix_fmt", pixFmt, clip]),
  }).output();
  assert.ok(made.success, new TextDecoder().decode(made.stderr));
  return clip;
}

/** RGB PSNR (dB) of a JPEG against the camera frame it came from: wrong colour range shows as a low figure. */
async function rgbPsnr(jpeg: Uint8Array): Promise<number> {
  const path = await Deno.makeTempFile({ suffix: ".jpg" });
  try {
    await Deno.writeFile(path, jpeg);
    const out = await new Deno.Command("ffmpeg", {
      args: [
        "-hide_banner",
        "-i",
        path,
        "-i",
        STILL,
        "-lavfi",
        "[0]format=rgb24[a];[1]format=rgb24[b];[a][b]psnr",
      ]
        .concat(["-f", "null", "-"]),
    }).output();
    const m = /PSNR .*average:([\d.]+|inf)/.exec(new TextDecoder().decode(out.stderr));
    assert.ok(m, "psnr printed");
    return Number(m[1] === "inf" ? Infinity : m[1]);
  } finally {
    await Deno.remove(path);
  }
}

const STILL = new URL("../fixtures/mcity-gs-ne/frames/0040.jpg", import.meta.url).pathname;

Deno.test("colour range: a limited-range camera's JPEGs are full range; a full-range camera is detected and kept right", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const pixFmt of ["yuv420p", "yuvj420p"]) {
      const server = await startRtspServer({
        source: "h264file",
        file: await stillClip(dir, pixFmt),
        fps: 10,
        loop: false, // 5 frames of a 10 s clip
      });
      const { events, onEvent } = recorder();
      const cap = new RtspCapture({ url: server.url, onEvent });
      try {
        await cap.start();
        const frames = await take(cap, 5, 15000, events).catch((e) => {
          throw new Error(`${pixFmt} camera: ${e.message}; ${server.diagnostics()}`);
        });
        // The same picture through H.264 and back to JPEG at MSight's quality: 39-40 dB. Measured by hand on this
        // frame: the range expanded twice gives 30 dB, not expanded at all (the CS=ITU601 hint ignored, as libjpeg
        // does) 26.5 dB.
        const psnr = await rgbPsnr(frames[4].data);
        assert.ok(psnr > 35, `${pixFmt} camera: PSNR ${psnr.toFixed(1)} dB against the source frame`);
        const ranges = events.filter((e) => e.type === "colour-range");
        if (pixFmt === "yuv420p") assert.deepEqual(ranges, []);
        else assert.deepEqual(ranges, [{ type: "colour-range", pixFmt: "yuvj420p", range: "pc" }]);
        assert.equal(cap.stats().reconnects, 0, "the switch is not a reconnect");
      } finally {
        await cap.stop();
        await server.stop();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
