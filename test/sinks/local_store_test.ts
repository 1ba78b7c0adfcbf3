import assert from "node:assert/strict";
import { VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { FatalError } from "../../src/runtime/errors.ts";
import { Logger } from "../../src/runtime/log.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { cleanupTempFiles, isTempName, writeFileAtomic } from "../../src/sinks/atomic_file.ts";
import { LocalStore } from "../../src/sinks/local_store.ts";
import { sha256Hex } from "../../src/sinks/metadata.ts";
import { smallMp4 } from "../helpers/segments.ts";

const FRAME0 = 7421057263124512769n;

function segment(i: number, opts: { sensor?: string; bytes?: number; frameId?: bigint } = {}): VideoData {
  const ts = 1769272125.649586 + i * 10;
  const video = new Uint8Array(opts.bytes ?? 1000).map((_, j) => (i * 31 + j) & 0xff);
  const frameIds = [0n, 1n, 2n].map((k) => FRAME0 + BigInt(i) * 1000n + k);
  return {
    dataType: VIDEO_DATA_TYPE,
    sensorName: opts.sensor ?? "cam",
    captureTimestamp: ts,
    creationTimestamp: ts + 10,
    frameId: opts.frameId ?? frameIds[0],
    deviceName: "edge-1",
    video,
    detectionResults: null,
    frameIds,
    captureTimestamps: [ts, ts + 0.1, ts + 0.2],
  };
}

function quietLog(lines: string[] = []): Logger {
  return new Logger({ device: "edge-1", node: "video_dumper", level: "DEBUG", sink: (l) => lines.push(l) });
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("atomic write replaces the file whole and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/a.json`, "one\n");
    await writeFileAtomic(`${dir}/a.json`, new TextEncoder().encode("two\n"));
    assert.equal(await Deno.readTextFile(`${dir}/a.json`), "two\n");
    assert.deepEqual(await listDir(dir), ["a.json"]);
    // A failed write (target is a directory) leaves the old state and no temp file.
    await Deno.mkdir(`${dir}/d`);
    await assert.rejects(writeFileAtomic(`${dir}/d`, "x"));
    assert.deepEqual(await listDir(dir), ["a.json", "d"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("leftover temp files are removed on start and reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/.cam_20260124_162845_649586.mp4.tmp-0a1b2c3d`, "partial");
    await Deno.writeTextFile(`${dir}/keep.txt`, "not ours");
    assert.ok(isTempName(".x.mp4.tmp-0a1b2c3d"));
    assert.ok(!isTempName("x.mp4"));
    const lines: string[] = [];
    const store = await LocalStore.open({ saveDir: dir, log: quietLog(lines) });
    assert.ok(store);
    assert.deepEqual(await listDir(dir), ["keep.txt"]);
    assert.ok(
      lines.some((l) => l.includes("WARNING") && l.includes("removed 1 temporary file")),
      lines.join("\n"),
    );
    assert.deepEqual(await cleanupTempFiles(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dumper writes .mp4 and .json named from the first frame; save dir created", async () => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/received_videos/nested`;
  try {
    const store = await LocalStore.open({ saveDir: dir, log: quietLog() });
    const seg = segment(0);
    const res = await store.write(seg);
    assert.equal(res.status, "written");
    assert.equal(res.stem, "cam_20260124_162845_649586");
    assert.deepEqual(await listDir(dir), [
      "cam_20260124_162845_649586.json",
      "cam_20260124_162845_649586.mp4",
    ]);
    assert.deepEqual(await Deno.readFile(res.videoPath), seg.video);
    const json = await Deno.readTextFile(res.metadataPath);
    assert.match(json, new RegExp(`"frame_id": ${FRAME0},`));
    assert.match(json, new RegExp(`"sha256": "${sha256Hex(seg.video)}"`));
    const mp4Time = (await Deno.stat(res.videoPath)).mtime!.getTime();
    const jsonTime = (await Deno.stat(res.metadataPath)).mtime!.getTime();
    assert.ok(jsonTime >= mp4Time, "the .json is written after the .mp4");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("idempotent: the same segment twice gives the same files and no duplicate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const metrics = new Metrics();
    const store = await LocalStore.open({ saveDir: dir, log: quietLog(), metrics });
    const first = await store.write(segment(0));
    const before = await Deno.readTextFile(first.metadataPath);
    const again = await store.write(segment(0));
    assert.equal(again.status, "unchanged");
    assert.equal(again.videoPath, first.videoPath);
    assert.equal(await Deno.readTextFile(first.metadataPath), before);
    // Also across a restart (new instance on the same dir).
    const store2 = await LocalStore.open({ saveDir: dir, log: quietLog() });
    assert.equal((await store2.write(segment(0))).status, "unchanged");
    assert.equal((await listDir(dir)).length, 2);
    assert.equal(metrics.counter("dumper_segments_duplicate_total", "").get(), 1);
    // A different segment whose stem coincides keeps both, under distinct names.
    const clash = await store.write(segment(0, { frameId: FRAME0 + 99n, bytes: 500 }));
    assert.equal(clash.stem, `cam_20260124_162845_649586_${FRAME0 + 99n}`);
    assert.equal((await listDir(dir)).length, 4);
    // An incomplete segment (.mp4 without .json, as after a crash) is completed by the redelivery.
    await Deno.remove(first.metadataPath);
    assert.equal((await store.write(segment(0))).status, "written");
    assert.equal(await Deno.readTextFile(first.metadataPath), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostile sensor names never write outside the save dir", async () => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/save`;
  try {
    const store = await LocalStore.open({ saveDir: dir, log: quietLog() });
    for (const [i, name] of ["../../x", "/etc/passwd", "a/b", "..", "a\0b", "y".repeat(3000)].entries()) {
      const res = await store.write(segment(i, { sensor: name }));
      assert.equal(res.videoPath.lastIndexOf("/"), dir.length, res.videoPath);
    }
    assert.deepEqual(await listDir(root), ["save"]);
    assert.equal((await listDir(dir)).length, 12);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("unwritable save dir is one clear FatalError naming the dir", async () => {
  const root = await Deno.makeTempDir();
  try {
    // Under a regular file: blocked even for root, unlike chmod 0500.
    await Deno.writeTextFile(`${root}/file`, "x");
    const bad = `${root}/file/videos`;
    const err = await LocalStore.open({ saveDir: bad, log: quietLog() }).then(() => null, (e) => e);
    assert.ok(err instanceof FatalError, String(err));
    assert.ok(err.message.includes(bad), err.message);
    assert.ok(!err.message.includes("\n"));
    const err2 = await LocalStore.open({ saveDir: "/proc/msight-videos", log: quietLog() }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err2 instanceof FatalError, String(err2));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("retention by age deletes the oldest segments, logged, never the new one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = Date.now();
    const lines: string[] = [];
    const store = await LocalStore.open({ saveDir: dir, log: quietLog(lines), maxAgeS: 60, now: () => now });
    await store.write(segment(0));
    now += 30_000;
    await store.write(segment(1));
    now += 40_000; // segment 0 is 70 s old, segment 1 40 s
    const res = await store.write(segment(2));
    assert.deepEqual(res.deleted.map((p) => p.slice(dir.length + 1)), [
      "cam_20260124_162845_649586.json",
      "cam_20260124_162845_649586.mp4",
    ]);
    assert.equal((await listDir(dir)).length, 4);
    assert.ok(
      lines.some((l) => l.includes("retention deleted segment cam_20260124_162845_649586 reason=max_age")),
    );
    now += 1_000_000;
    // Everything old, but the segment just written stays.
    const last = await store.write(segment(3));
    assert.deepEqual(await listDir(dir), [`${last.stem}.json`, `${last.stem}.mp4`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("retention by total bytes keeps the newest that fit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = Date.now();
    const metrics = new Metrics();
    const store = await LocalStore.open({
      saveDir: dir,
      log: quietLog(),
      maxBytes: 5000,
      metrics,
      now: () => now,
    });
    const stems: string[] = [];
    for (let i = 0; i < 6; i++) {
      now += 1000;
      stems.push((await store.write(segment(i, { bytes: 1000 }))).stem);
    }
    // Each segment is 1000 bytes of video plus ~700 of JSON: two fit in 5000... three do not.
    const left = (await listDir(dir)).filter((n) => n.endsWith(".mp4")).map((n) => n.slice(0, -4));
    assert.deepEqual(left, stems.slice(-left.length));
    assert.ok(store.storedBytes <= 5000, `${store.storedBytes}`);
    assert.ok(left.length >= 2 && left.length < 6);
    assert.equal(
      metrics.counter("dumper_retention_deleted_total", "").get({ reason: "max_bytes" }),
      6 - left.length,
    );
    // Files of other programs are never touched.
    await Deno.writeTextFile(`${dir}/notes.json`, "{}");
    await store.rescan();
    await store.enforceRetention();
    assert.ok((await listDir(dir)).includes("notes.json"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("retention by min free bytes deletes oldest when the disk is 'full'", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    // Asking for more free space than any disk has: every segment but the newest goes, with a warning.
    const store = await LocalStore.open({
      saveDir: dir,
      log: quietLog(lines),
      minFreeBytes: Number.MAX_SAFE_INTEGER,
    });
    for (let i = 0; i < 3; i++) await store.write(segment(i));
    assert.equal((await listDir(dir)).length, 2);
    assert.ok(lines.some((l) => l.includes("reason=min_free")));
    assert.ok(lines.some((l) => l.includes("below min free bytes")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dumper: an MSight segment is named from its first frame, not its pack time, and the .json describes the MP4", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await LocalStore.open({ saveDir: dir, log: quietLog() });
    const first = 1769272125.649586;
    // As MSight's aggregator publishes it: no extra keys, capture_timestamp set when packing (83 s later).
    const seg: VideoData = { ...segment(0), video: await smallMp4(), captureTimestamp: first + 83 };
    const res = await store.write(seg);
    assert.equal(res.stem, "cam_20260124_162845_649586");
    const obj = JSON.parse(await Deno.readTextFile(res.metadataPath));
    assert.equal(obj.start, "2026-01-24T16:28:45.649586Z");
    assert.equal(obj.start_source, "capture_timestamps");
    assert.deepEqual([obj.codec, obj.width, obj.height, obj.fps, obj.duration], ["h264", 320, 240, 10, 0.5]);
    // Without capture times, the first frame id's Snowflake millisecond names it.
    const noTimes: VideoData = { ...seg, captureTimestamps: [], frameId: FRAME0 + 5000n };
    const r2 = await store.write(noTimes);
    const ms = Number(FRAME0 >> 22n);
    assert.equal(
      r2.stem,
      `cam_${new Date(ms).toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15)}_${
        String(ms % 1000).padStart(3, "0")
      }000`,
    );
    assert.equal(JSON.parse(await Deno.readTextFile(r2.metadataPath)).start_source, "frame_id");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
