import assert from "node:assert/strict";
import { decode } from "@msgpack/msgpack";
import { VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { isoMicros } from "../../src/bus/describe.ts";
import {
  mediaFacts,
  readFrameId,
  segmentMetadataJson,
  sha256Hex,
  toJsonText,
} from "../../src/sinks/metadata.ts";

const FIXTURES = new URL("../fixtures/msight-wire/", import.meta.url);

interface Expected {
  keys_in_order: string[];
  fields: {
    frame_id: string;
    frame_ids: string[];
    capture_timestamps: number[];
    video: { bytes: number; sha256: string };
  };
}

/** The fixture VideoData as MSight encoded it, decoded with 64-bit ints as bigint. */
function fixtureSegment(): VideoData {
  const raw = decode(Deno.readFileSync(new URL("video.msgpack", FIXTURES)), { useBigInt64: true }) as Record<
    string,
    unknown
  >;
  return {
    dataType: VIDEO_DATA_TYPE,
    sensorName: raw.sensor_name as string,
    captureTimestamp: raw.capture_timestamp as number,
    creationTimestamp: raw.creation_timestamp as number,
    frameId: BigInt(raw.frame_id as bigint),
    deviceName: raw.device_name as string,
    video: raw.video as Uint8Array,
    detectionResults: raw.detection_results,
    frameIds: (raw.frame_ids as bigint[]).map((x) => BigInt(x)),
    captureTimestamps: raw.capture_timestamps as number[],
  };
}

function expected(): Expected {
  return JSON.parse(Deno.readTextFileSync(new URL("video.expected.json", FIXTURES)));
}

Deno.test("metadata keeps every digit of the 64-bit ids (byte-exact vs the MSight fixture)", () => {
  const seg = fixtureSegment();
  const exp = expected();
  const text = segmentMetadataJson(seg, { byteSize: seg.video.byteLength, sha256: sha256Hex(seg.video) });
  const ids = /"frame_ids": \[([^\]]*)\]/.exec(text)![1].split(",").map((s) => s.trim());
  assert.deepEqual(ids, exp.fields.frame_ids);
  assert.match(text, new RegExp(`"frame_id": ${exp.fields.frame_id},`));
  assert.equal(readFrameId(text), BigInt(exp.fields.frame_id));
  // Numbers, not strings: MSight's readers get ints.
  assert.ok(!text.includes(`"${exp.fields.frame_ids[0]}"`));
});

Deno.test("metadata has MSight's keys in MSight's order, video null, then ours", () => {
  const seg = fixtureSegment();
  const exp = expected();
  const sha = sha256Hex(seg.video);
  assert.equal(sha, exp.fields.video.sha256);
  const text = segmentMetadataJson(seg, { byteSize: seg.video.byteLength, sha256: sha });
  const obj = JSON.parse(text); // precision of ids is irrelevant here
  const keys = Object.keys(obj);
  assert.deepEqual(keys.slice(0, 10), exp.keys_in_order);
  assert.deepEqual(keys.slice(10), [
    "codec",
    "width",
    "height",
    "fps",
    "frame_count",
    "duration",
    "start",
    "start_source",
    "end",
    "byte_size",
    "sha256",
  ]);
  assert.equal(obj.data_type, VIDEO_DATA_TYPE);
  assert.equal(obj.video, null);
  assert.equal(obj.byte_size, exp.fields.video.bytes);
  assert.equal(obj.sha256, exp.fields.video.sha256);
  assert.equal(obj.frame_count, 5);
  assert.deepEqual(obj.capture_timestamps, exp.fields.capture_timestamps);
  assert.equal(obj.start, "2026-01-24T16:28:45.649586Z");
  assert.equal(obj.end, isoMicros(exp.fields.capture_timestamps[4]));
  assert.ok(text.endsWith("}\n"));
});

Deno.test("metadata: the media fields are read from the MP4 itself, for MSight's segments and ours alike", async () => {
  // MSight's segment: no info, and its capture_timestamp is when MSight packed the video, 83 s after the first frame.
  const msight: VideoData = {
    ...fixtureSegment(),
    captureTimestamp: fixtureSegment().captureTimestamps[0] + 83,
  };
  const media = await mediaFacts(msight);
  assert.deepEqual(media, { codec: "h264", width: 320, height: 240, fps: 10, duration: 0.5, frames: 5 });
  const obj = JSON.parse(segmentMetadataJson(msight, { byteSize: 1, sha256: "ab", media }));
  assert.deepEqual([obj.codec, obj.width, obj.height, obj.fps, obj.duration, obj.frame_count], [
    "h264",
    320,
    240,
    10,
    0.5,
    5,
  ]);
  assert.equal(obj.start, "2026-01-24T16:28:45.649586Z");
  assert.equal(obj.start_source, "capture_timestamps");
  assert.equal(obj.flush_reason, undefined);
  // Ours: info that disagrees with the file loses; flush reason and encoder still come from info.
  const ours: VideoData = {
    ...fixtureSegment(),
    info: {
      codec: "hevc",
      width: 1280,
      height: 546,
      fps: 25,
      frameCount: 5,
      durationS: 9,
      start: "2026-01-24T16:28:45.649586Z",
      end: "2026-01-24T16:28:46.049586Z",
      encoder: "ffmpeg:libx264",
      flushReason: "full",
      overlapFrames: 0,
    },
  };
  const o = JSON.parse(
    segmentMetadataJson(ours, { byteSize: 1, sha256: "ab", media: await mediaFacts(ours) }),
  );
  assert.deepEqual([o.codec, o.width, o.height, o.fps, o.duration], ["h264", 320, 240, 10, 0.5]);
  assert.equal(o.flush_reason, "full");
  assert.equal(o.encoder, "ffmpeg:libx264");
  // Bytes that are no MP4: null media fields, the segment is still described.
  const junk: VideoData = { ...fixtureSegment(), video: new Uint8Array([1, 2, 3]) };
  assert.equal(await mediaFacts(junk), null);
  const j = JSON.parse(segmentMetadataJson(junk, { byteSize: 3, sha256: "ab", media: null }));
  assert.deepEqual([j.codec, j.width, j.duration], [null, null, null]);
});

Deno.test("toJsonText handles bigint anywhere, Maps, bytes, non-finite numbers, and refuses cycles", () => {
  assert.equal(toJsonText({ a: [1n, 18446744073709551615n] }), '{"a":[1,18446744073709551615]}');
  assert.equal(toJsonText(new Map([["k", 2n]])), '{"k":2}');
  assert.equal(toJsonText(new Uint8Array([1, 2, 3])), '"AQID"');
  assert.equal(toJsonText([NaN, Infinity, undefined, "x\n"]), '[null,null,null,"x\\n"]');
  assert.equal(toJsonText({ a: [], b: {} }, 2), '{\n  "a": [],\n  "b": {}\n}');
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  assert.throws(() => toJsonText(cyc), TypeError);
  // Same text as JSON.stringify for plain values.
  const plain = { s: "é\u2028", n: 1.5, b: true, z: null, arr: [1, { x: 2 }] };
  assert.equal(toJsonText(plain, 2), JSON.stringify(plain, null, 2));
});

Deno.test("isoMicros: microseconds exact, rounding carried into the seconds", () => {
  assert.equal(isoMicros(1769272125.649586), "2026-01-24T16:28:45.649586Z");
  assert.equal(isoMicros(0.000001), "1970-01-01T00:00:00.000001Z");
  assert.equal(isoMicros(1.9999996), "1970-01-01T00:00:02.000000Z");
});
