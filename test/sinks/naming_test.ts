import assert from "node:assert/strict";
import {
  firstFrameTime,
  MAX_SAFE_NAME_LENGTH,
  normalizePrefix,
  s3Keys,
  safeName,
  segmentStem,
  STEM_PATTERN,
} from "../../src/sinks/naming.ts";

const TS = 1769272125.649586; // 2026-01-24 16:28:45.649586 UTC

Deno.test("stem is <sensor>_<YYYYMMDD>_<HHMMSS>_<ffffff> in UTC", () => {
  assert.equal(segmentStem("test_camera", TS), "test_camera_20260124_162845_649586");
  assert.equal(segmentStem("cam", 1769272126.512345), "cam_20260124_162846_512345");
  // Microseconds that round up carry into the next second, as Python's datetime does.
  assert.equal(segmentStem("cam", 1700000000.9999996), "cam_20231114_221321_000000");
  assert.match(segmentStem("cam", TS), STEM_PATTERN);
});

Deno.test("local time zone option uses the host's clock", () => {
  const d = new Date(Math.floor(TS) * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  const want = `cam_${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_` +
    `${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}_649586`;
  assert.equal(segmentStem("cam", TS, "local"), want);
});

Deno.test("non-finite capture time is refused", () => {
  assert.throws(() => segmentStem("cam", NaN), RangeError);
  assert.throws(() => segmentStem("cam", Infinity), RangeError);
});

Deno.test("path traversal, separators and NUL cannot escape a directory", () => {
  const hostile = [
    "../../x",
    "..",
    ".",
    "/",
    "a/b",
    "/etc/passwd",
    "a\0b",
    "\0",
    "..\\..\\x",
    ".hidden",
    "a/../b",
  ];
  for (const name of hostile) {
    const s = safeName(name);
    assert.ok(!s.includes("/"), `${JSON.stringify(name)} -> ${s} has a slash`);
    assert.ok(!s.includes("\0"), `${JSON.stringify(name)} -> ${s} has NUL`);
    assert.ok(!s.includes("\\"), `${JSON.stringify(name)} -> ${s} has a backslash`);
    assert.ok(!s.startsWith("."), `${JSON.stringify(name)} -> ${s} starts with a dot`);
    assert.notEqual(s, "");
    const stem = segmentStem(name, TS);
    assert.ok(!stem.includes("/") && !stem.startsWith("."), stem);
    const keys = s3Keys({ sensorName: name, deviceName: name, captureTimestamp: TS }, "p");
    assert.ok(
      keys.video.split("/").every((part) => part !== ".." && part !== "." && part !== ""),
      keys.video,
    );
    assert.equal(keys.video.split("/").length, 6, keys.video);
  }
  assert.equal(safeName("../../x"), "%2E.%2F..%2Fx");
  assert.equal(safeName("cam/1"), "cam%2F1");
  assert.equal(safeName("a\0b"), "a%00b");
});

Deno.test("ordinary names are kept as typed", () => {
  for (const name of ["rtsp_sensor", "cam-01", "cam.v2", "Gridsmart_NE"]) assert.equal(safeName(name), name);
});

Deno.test("distinct names stay distinct (percent-encoding is injective)", () => {
  const names = ["a/b", "a%2Fb", "a_b", "a b", "a%b", "", "%", "..", "%2E.", "a\0b", "a%00b", "é", "%C3%A9"];
  const seen = new Map<string, string>();
  for (const n of names) {
    const s = safeName(n);
    assert.ok(!seen.has(s), `${JSON.stringify(n)} and ${JSON.stringify(seen.get(s))} both give ${s}`);
    seen.set(s, n);
  }
});

Deno.test("very long names are capped with a hash and stay distinct", () => {
  const a = "x".repeat(5000);
  const b = "x".repeat(4999) + "y";
  const sa = safeName(a);
  const sb = safeName(b);
  assert.ok(sa.length <= MAX_SAFE_NAME_LENGTH, `${sa.length}`);
  assert.notEqual(sa, sb);
  assert.match(sa, /~[0-9a-f]{16}$/);
  // A cut never ends inside an escape.
  const slashes = "/".repeat(300);
  const s = safeName(slashes);
  assert.match(s, /^(%2F)+~[0-9a-f]{16}$/);
  // Whole file names stay under the usual 255-byte limit, temp suffix included.
  const stem = segmentStem("é".repeat(1000), TS);
  assert.ok(new TextEncoder().encode(`.${stem}.json.tmp-01234567`).length < 255);
  // A long name cut to the cap never equals a short name, since "~" is never kept by the encoding.
  assert.equal(safeName("a~b"), "a%7Eb");
});

Deno.test("S3 keys: prefix/device/sensor/date/hour/stem, UTC", () => {
  const seg = { sensorName: "test_camera", deviceName: "testing", captureTimestamp: TS };
  const k = s3Keys(seg, "msight_tutorial");
  assert.equal(
    k.video,
    "msight_tutorial/testing/test_camera/2026-01-24/16/test_camera_20260124_162845_649586.mp4",
  );
  assert.equal(
    k.metadata,
    "msight_tutorial/testing/test_camera/2026-01-24/16/test_camera_20260124_162845_649586.json",
  );
  assert.equal(
    s3Keys(seg, "").video,
    "testing/test_camera/2026-01-24/16/test_camera_20260124_162845_649586.mp4",
  );
  assert.equal(s3Keys(seg, "/a/b/").video.slice(0, 12), "a/b/testing/");
  assert.equal(normalizePrefix("//x//y/"), "x/y");
  assert.throws(() => normalizePrefix("a/../b"), RangeError);
});

Deno.test("naming: the first-frame time comes from capture_timestamps, else the first Snowflake id, else the message", () => {
  const ids = [7421057263124512769n, 7421057263543943169n];
  const idMs = Number(ids[0] >> 22n); // MSight's snowflake-id generator: Unix-epoch milliseconds, epoch 0
  const packed = TS + 83; // MSight stamps the VideoData when it packs it
  const base = { sensorName: "rtsp_sensor", deviceName: "d", captureTimestamp: packed };
  assert.deepEqual(firstFrameTime({ ...base, captureTimestamps: [TS, TS + 0.1], frameIds: ids }), {
    epochS: TS,
    source: "capture_timestamps",
  });
  assert.deepEqual(firstFrameTime({ ...base, captureTimestamps: [], frameIds: ids }), {
    epochS: idMs / 1000,
    source: "frame_id",
  });
  assert.deepEqual(firstFrameTime({ ...base, frameIds: [12345n] }), {
    epochS: packed,
    source: "capture_timestamp",
  });
  assert.deepEqual(firstFrameTime(base), { epochS: packed, source: "capture_timestamp" });
  // The S3 key and the local stem are named by it.
  const k = s3Keys({ ...base, captureTimestamps: [], frameIds: ids }, "p");
  assert.equal(k.stem, segmentStem("rtsp_sensor", idMs / 1000));
  assert.equal(s3Keys({ ...base, captureTimestamps: [TS] }, "p").stem, segmentStem("rtsp_sensor", TS));
});
