// FfmpegSession against a scripted stand-in for ffmpeg (a shell script writing what ffmpeg writes, in the order
// and at the times it writes it): frames pair with their reports, the arrival is ffmpeg's clock, and stderr is
// read on demand once frames flow. The real ffmpeg is exercised by capture_rtsp_test.ts.
import assert from "node:assert/strict";
import { FfmpegSession, type SessionFrame } from "../../src/capture/session.ts";
import type { FfmpegLogLine } from "../../src/capture/stderr.ts";

const JPEG = new URL("../fixtures/mcity-gs-ne/frames/0000.jpg", import.meta.url).pathname;
const CLOCK0_US = 1763780000000000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `body` as an executable script and returns its path. */
async function script(body: string): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".sh" });
  await Deno.writeTextFile(path, `#!/bin/bash\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

/** The two reports ffmpeg's metadata filters write for frame `i` (stream pts i × 0.1 s). */
const reports = (i: number) =>
  `printf 'frame:${i}    pts:${i * 100000} pts_time:${i / 10}\\nedge_pts=1\\n' >&2; ` +
  `printf 'frame:${i}    pts:${CLOCK0_US + i * 100000 + 7} pts_time:1.76378e+09\\nedge_clock=1\\n' >&2`;

Deno.test("FfmpegSession: frames pair with ffmpeg's reports; the arrival is ffmpeg's clock, to the µs", async () => {
  const ffmpeg = await script([
    "echo '  Stream #0:0: Video: h264 (High), yuv420p(tv, bt709, progressive), 1280x960, 10 fps' >&2",
    ...[0, 1, 2].map((i) => `${reports(i)}; sleep 0.05; cat '${JPEG}'; sleep 0.1`),
  ].join("\n"));
  const frames: SessionFrame[] = [];
  const lines: FfmpegLogLine[] = [];
  try {
    const session = FfmpegSession.spawn({
      ffmpegPath: ffmpeg,
      args: [],
      format: "jpeg",
      onFrame: (f) => frames.push(f),
      onLine: (l) => lines.push(l),
    });
    assert.deepEqual(await session.done, { code: 0, signal: null });
    assert.equal(frames.length, 3);
    frames.forEach((f, i) => {
      assert.equal(f.ptsTime, i / 10);
      assert.equal(f.arrival, (CLOCK0_US + i * 100000 + 7) / 1e6, "ffmpeg's clock, not the read time");
      assert.deepEqual([f.width, f.height], [1280, 960], "the size from the JPEG's header");
    });
    assert.equal(session.unpaired, 0);
    assert.deepEqual(lines.map((l) => l.kind), ["video-stream"], "reports are not passed on as log lines");
  } finally {
    await Deno.remove(ffmpeg);
  }
});

Deno.test("FfmpegSession: once frames flow, stderr waits for a frame or a poll (an error line surfaces on poll)", async () => {
  const ffmpeg = await script([
    // The read already pending when the first frame arrives takes frame 1's reports; from then on stderr waits.
    `${reports(0)}; cat '${JPEG}'; sleep 0.1`,
    `${reports(1)}; cat '${JPEG}'`,
    "sleep 0.3",
    "echo '[h264 @ 0x55] error while decoding MB 10 20, bytestream -5' >&2",
    "sleep 3",
  ].join("\n"));
  const lines: FfmpegLogLine[] = [];
  let frames = 0;
  try {
    const session = FfmpegSession.spawn({
      ffmpegPath: ffmpeg,
      args: [],
      format: "jpeg",
      onFrame: () => frames++,
      onLine: (l) => lines.push(l),
    });
    try {
      await sleep(1200);
      assert.equal(frames, 2);
      assert.equal(
        lines.length,
        0,
        "the error line waits in the pipe: no frame came after it and nobody polled",
      );
      session.pollStderr();
      const end = Date.now() + 1000;
      while (lines.length === 0 && Date.now() < end) await sleep(20);
      assert.equal(lines[0]?.kind, "decode-error", "read on the poll");
    } finally {
      session.kill("SIGKILL");
      await session.done;
    }
  } finally {
    await Deno.remove(ffmpeg);
  }
});

Deno.test("FfmpegSession: a frame whose clock report never came carries its read time; raw frames take showinfo's size", async () => {
  const raw = 4 * 2 * 3;
  const ffmpeg = await script([
    // Frame 0: the pts report only. Frame 1: both reports. Each raw frame is preceded by its showinfo size line.
    `printf 'frame:0 pts:0 pts_time:0\\nedge_pts=1\\n' >&2`,
    `echo '[Parsed_showinfo_5 @ 0x1] n:   0 pts:0 pts_time:0 pos: -1 fmt:bgr24 sar:1/1 s:4x2 i:P' >&2`,
    `head -c ${raw} /dev/zero`,
    "sleep 0.1",
    `${reports(1)}`,
    `echo '[Parsed_showinfo_5 @ 0x1] n:   1 pts:1 pts_time:1 pos: -1 fmt:bgr24 sar:1/1 s:4x2 i:P' >&2`,
    `head -c ${raw} /dev/zero`,
  ].join("\n"));
  const frames: SessionFrame[] = [];
  try {
    const before = Date.now() / 1000;
    const session = FfmpegSession.spawn({
      ffmpegPath: ffmpeg,
      args: [],
      format: "bgr24",
      onFrame: (f) => frames.push(f),
      onLine: () => {},
    });
    await session.done;
    assert.equal(frames.length, 2);
    assert.deepEqual(frames.map((f) => [f.width, f.height, f.data.length]), [[4, 2, raw], [4, 2, raw]]);
    assert.ok(frames[0].arrival >= before && frames[0].arrival <= Date.now() / 1000, "read time");
    assert.equal(frames[1].arrival, (CLOCK0_US + 100000 + 7) / 1e6);
    assert.equal(frames[1].ptsTime, 0.1);
  } finally {
    await Deno.remove(ffmpeg);
  }
});
