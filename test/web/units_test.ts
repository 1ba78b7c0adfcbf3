/**
 * The console's pieces that need no browser: Range parsing, path safety, the timeline, the recordings index on
 * real files, the PNG encoder (checked by ffprobe decoding it), Prometheus parsing and the flag checks.
 */
import assert from "node:assert/strict";
import { parseRange } from "../../src/web/range.ts";
import { isPlainRelativePath, resolveUnder } from "../../src/web/safe_path.ts";
import { buildTimeline } from "../../src/web/timeline.ts";
import { parseStem, RecordingsIndex } from "../../src/web/recordings.ts";
import { bgrToPng } from "../../src/web/png.ts";
import { figuresOf, parsePrometheus } from "../../src/web/nodes_view.ts";
import { checkWebFlags, isLoopback, parseMetricsUrls } from "../../src/node/web_flags.ts";
import { UsageError } from "../../src/runtime/errors.ts";

Deno.test("web range: single ranges, suffixes, open ends; past the end is unsatisfiable; odd headers serve whole", () => {
  assert.deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=500-", 1000), { start: 500, end: 999 });
  assert.deepEqual(parseRange("bytes=-100", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-5000", 1000), { start: 0, end: 999 });
  assert.deepEqual(parseRange("bytes=990-5000", 1000), { start: 990, end: 999 });
  assert.equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=0-", 0), "unsatisfiable");
  assert.equal(parseRange("bytes=99999999999999999999-", 1000), "unsatisfiable");
  assert.equal(parseRange(null, 1000), undefined);
  assert.equal(parseRange("bytes=5-1", 1000), undefined);
  assert.equal(parseRange("bytes=0-1,5-6", 1000), undefined);
  assert.equal(parseRange("items=0-1", 1000), undefined);
  assert.equal(parseRange("bytes=-", 1000), undefined);
  assert.equal(parseRange("bytes=" + "1".repeat(300) + "-", 1000), undefined);
});

Deno.test("web paths: only plain relative paths; links out of the directory and non-files are refused", async () => {
  for (const bad of ["", "/etc/passwd", "../x", "a/../../x", "a//b", ".hidden", "a/.b", "a\\b", "a\0b"]) {
    assert.equal(isPlainRelativePath(bad), false, bad);
  }
  assert.ok(isPlainRelativePath("cam_20260124_162845_649586.mp4"));
  const root = await Deno.makeTempDir({ prefix: "msight-web-paths-" });
  try {
    await Deno.mkdir(`${root}/save/sub`, { recursive: true });
    await Deno.writeTextFile(`${root}/save/a.json`, "{}");
    await Deno.writeTextFile(`${root}/secret.json`, "{}");
    await Deno.symlink(`${root}/secret.json`, `${root}/save/link.json`);
    await Deno.symlink(`${root}`, `${root}/save/up`);
    await Deno.symlink(`${root}/save/a.json`, `${root}/save/inside.json`);
    assert.equal(await resolveUnder(`${root}/save`, "a.json"), await Deno.realPath(`${root}/save/a.json`));
    assert.equal(
      await resolveUnder(`${root}/save`, "inside.json"),
      await Deno.realPath(`${root}/save/a.json`),
    );
    assert.equal(await resolveUnder(`${root}/save`, "link.json"), null);
    assert.equal(await resolveUnder(`${root}/save`, "up/secret.json"), null);
    assert.equal(await resolveUnder(`${root}/save`, "sub"), null);
    assert.equal(await resolveUnder(`${root}/save`, "missing.json"), null);
    assert.equal(await resolveUnder(`${root}/nowhere`, "a.json"), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("web timeline: consecutive segments join into one span; a hole longer than joinS is a gap; old ones drop", () => {
  const seg = (id: string, sensor: string, start: number, end: number) => ({ id, sensor, start, end });
  const now = 100_000;
  const t = buildTimeline(
    [
      seg("0/a1", "a", 99_000, 99_010),
      seg("0/a2", "a", 99_010.1, 99_020),
      seg("0/a3", "a", 99_050, 99_060),
      seg("0/b1", "b", 99_500, 99_510),
      seg("0/old", "a", 1_000, 1_010),
    ],
    now,
    { windowS: 3600, joinS: 2 },
  );
  assert.equal(t.from, now - 3600);
  assert.deepEqual(t.rows.map((r) => r.sensor), ["a", "b"]);
  const a = t.rows[0];
  assert.deepEqual(a.spans.map((s) => [s.start, s.end, s.segments.length]), [[99_000, 99_020, 2], [
    99_050,
    99_060,
    1,
  ]]);
  assert.deepEqual(a.gaps, [{ start: 99_020, end: 99_050 }]);
  assert.deepEqual(t.rows[1].gaps, []);
});

Deno.test("web recordings: listed from real files, newest first, facts from the .json, a lone .mp4 from its name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "msight-web-rec-" });
  try {
    await Deno.writeFile(`${dir}/cam_20260124_162845_649586.mp4`, new Uint8Array(10));
    await Deno.writeTextFile(
      `${dir}/cam_20260124_162845_649586.json`,
      JSON.stringify({
        sensor_name: "cam/1",
        codec: "h264",
        width: 1280,
        height: 960,
        frame_count: 100,
        start: "2026-01-24T16:28:45.649586Z",
        end: "2026-01-24T16:28:55.549586Z",
      }),
    );
    await Deno.writeFile(`${dir}/cam%2F2_20260124_170000_000000.mp4`, new Uint8Array(20));
    await Deno.writeFile(`${dir}/.cam_20260124_180000_000000.mp4.tmp`, new Uint8Array(1));
    await Deno.writeFile(`${dir}/notes.mp4`, new Uint8Array(1));
    const list = await new RecordingsIndex([dir, `${dir}/missing`]).list();
    assert.deepEqual(list.map((s) => [s.id, s.sensor, s.bytes, s.hasJson, s.codec]), [
      ["0/cam%2F2_20260124_170000_000000", "cam/2", 20, false, null],
      ["0/cam_20260124_162845_649586", "cam/1", 10, true, "h264"],
    ]);
    assert.equal(list[1].start, 1769272125.649586);
    assert.ok(Math.abs(list[1].end - 1769272135.549586) < 1e-6);
    assert.deepEqual(parseStem("x_20260124_162845_649586_7421057263124512769"), {
      sensor: "x",
      start: 1769272125.649586,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("web png: a raw BGR frame becomes a PNG that ffmpeg decodes to the same pixels", async () => {
  const w = 3, h = 2;
  const bgr = new Uint8Array(w * h * 3);
  for (let i = 0; i < bgr.length; i++) bgr[i] = (i * 37) % 256;
  const png = await bgrToPng(bgr, w, h);
  const p = new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = p.stdin.getWriter();
  await writer.write(png);
  await writer.close();
  const out = await p.output();
  assert.ok(out.success);
  assert.deepEqual(out.stdout, bgr);
  await assert.rejects(bgrToPng(new Uint8Array(5), 3, 2), RangeError);
});

Deno.test("web metrics: Prometheus text parsed; rates between two scrapes; drops by reason", () => {
  const a = parsePrometheus(
    '# HELP x\nmsight_frames_published_total 100\nmsight_messages_received_total{topic="t"} 50\n' +
      'msight_segments_dropped_total{reason="encoder"} 2\nmsight_outbox_depth 3\nmsight_reconnects_total 1\n',
  );
  const b = parsePrometheus(
    'msight_frames_published_total 80\nmsight_messages_received_total{topic="t"} 40\n',
  );
  const f = figuresOf(a, b, 2);
  assert.equal(f.fpsOut, 10);
  assert.equal(f.fpsIn, 5);
  assert.deepEqual(f.dropped, { encoder: 2 });
  assert.equal(f.outboxDepth, 3);
  assert.equal(f.reconnects, 1);
  assert.equal(figuresOf(a, undefined, 0).fpsOut, null);
});

Deno.test("web flags: loopback needs no token; any other address does; metrics URLs are checked", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) assert.ok(isLoopback(h), h);
  for (const h of ["0.0.0.0", "192.168.1.5", "::", "example.com"]) assert.ok(!isLoopback(h), h);
  checkWebFlags({ host: "127.0.0.1" });
  checkWebFlags({ host: "0.0.0.0", authToken: "long-enough-token" });
  assert.throws(() => checkWebFlags({ host: "0.0.0.0" }), UsageError);
  assert.throws(() => checkWebFlags({ host: "0.0.0.0", authToken: "short" }), /too short/);
  assert.deepEqual([...parseMetricsUrls("a=http://127.0.0.1:1/metrics, b=https://h:2/m")], [
    ["a", "http://127.0.0.1:1/metrics"],
    ["b", "https://h:2/m"],
  ]);
  assert.throws(() => parseMetricsUrls("a=ftp://x"), /--metrics-urls item "a=ftp:\/\/x" is invalid/);
});
