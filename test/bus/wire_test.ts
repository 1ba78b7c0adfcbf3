import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  decodeMessage,
  encodeMessage,
  encodeMessagePieces,
  MalformedMessageError,
} from "../../src/bus/wire.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";
import { IMAGE_DATA_TYPE, type ImageData, VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";
import { MsgpackWriter } from "../../src/bus/msgpack_writer.ts";
import { encode as msgpackEncode } from "@msgpack/msgpack";

const dir = new URL("../fixtures/msight-wire/", import.meta.url);

interface Expected {
  keys_in_order: string[];
  fields: Record<string, unknown>;
  first_bytes_hex: string;
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

for (const name of ["image_jpeg", "image_raw", "video"]) {
  Deno.test(`wire: ${name} fixture decodes to its expected fields and re-encodes to identical bytes`, async () => {
    const bytes = await Deno.readFile(new URL(`${name}.msgpack`, dir));
    const expected: Expected = JSON.parse(await Deno.readTextFile(new URL(`${name}.expected.json`, dir)));
    const msg = decodeMessage(bytes);
    const f = expected.fields;
    assert.equal(msg.dataType, f.data_type);
    assert.equal(msg.sensorName, f.sensor_name);
    assert.equal(msg.captureTimestamp, f.capture_timestamp);
    assert.equal(msg.creationTimestamp, f.creation_timestamp);
    assert.equal(msg.frameId, BigInt(f.frame_id as string));
    assert.equal(msg.frameId.toString(), f.frame_id);
    assert.equal(msg.deviceName, f.device_name);
    assert.equal(msg.detectionResults, f.detection_results);
    if (msg.dataType === IMAGE_DATA_TYPE) {
      const img = f.image as { bytes: number; sha256: string };
      assert.equal(msg.image.length, img.bytes);
      assert.equal(sha256(msg.image), img.sha256);
      assert.equal(msg.isEncoded, f.is_encoded);
      assert.deepEqual(msg.size, f.size);
    } else {
      const vid = f.video as { bytes: number; sha256: string };
      assert.equal(msg.video.length, vid.bytes);
      assert.equal(sha256(msg.video), vid.sha256);
      assert.deepEqual(msg.frameIds.map(String), f.frame_ids);
      assert.deepEqual(msg.captureTimestamps, f.capture_timestamps);
      assert.equal(msg.info, undefined);
    }
    const again = encodeMessage(msg);
    assert.equal(Buffer.from(again).toString("hex"), Buffer.from(bytes).toString("hex"));
    assert.ok(Buffer.from(again).toString("hex").startsWith(expected.first_bytes_hex));
  });
}

Deno.test("wire: our extra VideoData keys come after MSight's and survive a round trip", () => {
  const msg: VideoData = {
    dataType: VIDEO_DATA_TYPE,
    sensorName: "cam",
    captureTimestamp: 1769272125,
    creationTimestamp: 1769272126.5,
    frameId: 18446744073709551615n,
    deviceName: "edge",
    video: new Uint8Array([0, 0, 0, 24]),
    detectionResults: null,
    frameIds: [7421057263124512769n, 1n],
    captureTimestamps: [1769272125, 1769272125.1],
    info: {
      codec: "h264",
      width: 1279,
      height: 959,
      fps: 10,
      frameCount: 2,
      durationS: 0.2,
      start: "2026-01-24T16:28:45.000Z",
      end: "2026-01-24T16:28:45.100Z",
      encoder: "ffmpeg:libx264",
      flushReason: "full",
      overlapFrames: 0,
    },
  };
  const bytes = encodeMessage(msg);
  // capture_timestamp is integral but must still be a float64 (0xcb), as Python writes floats.
  const hex = Buffer.from(bytes).toString("hex");
  assert.ok(hex.includes(Buffer.from("capture_timestamp").toString("hex") + "cb"));
  assert.deepEqual(decodeMessage(bytes), msg);
});

Deno.test("wire: malformed messages are rejected with a kind, never a crash", () => {
  const cases: [Uint8Array, string][] = [
    [new Uint8Array([0xc1]), "not_msgpack"],
    [new Uint8Array([0x93, 1, 2, 3]), "not_a_map"],
    [new Uint8Array([0x80]), "no_data_type"],
  ];
  const w = new MsgpackWriter();
  w.mapHeader(1), w.str("data_type"), w.str("msight_core.data.pointcloud.PointCloudData");
  cases.push([w.finish().slice(), "unknown_data_type"]);
  const w2 = new MsgpackWriter();
  w2.mapHeader(2), w2.str("data_type"), w2.str(IMAGE_DATA_TYPE), w2.str("image"), w2.str("not bytes");
  cases.push([w2.finish().slice(), "bad_field"]);
  const w3 = new MsgpackWriter();
  w3.mapHeader(3), w3.str("data_type"), w3.str(IMAGE_DATA_TYPE), w3.str("image"), w3.bin(new Uint8Array(5));
  w3.str("is_encoded"), w3.bool(false);
  cases.push([w3.finish().slice(), "bad_field"]);
  for (const [bytes, kind] of cases) {
    assert.throws(
      () => decodeMessage(bytes),
      (e: unknown) => e instanceof MalformedMessageError && e.kind === kind,
    );
  }
  // Random bytes: always either a message or a MalformedMessageError.
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(1 + (i % 64)).map(rand);
    try {
      decodeMessage(b);
    } catch (e) {
      assert.ok(e instanceof MalformedMessageError, `unexpected ${e}`);
    }
  }
});

Deno.test("wire: a missing field is defaulted as MSight's readers do", () => {
  const w = new MsgpackWriter();
  w.mapHeader(3), w.str("data_type"), w.str(IMAGE_DATA_TYPE), w.str("image"), w.bin(new Uint8Array([1]));
  w.str("unknown_key"), w.int(5);
  const msg = decodeMessage(w.finish()) as ImageData;
  assert.equal(msg.sensorName, "");
  assert.equal(msg.isEncoded, true);
  assert.equal(msg.frameId, 0n);
});

Deno.test("snowflake: ids are unique and increasing within a millisecond and when the clock goes back", () => {
  let t = 1769272125000;
  const gen = new Snowflake(5, () => t);
  const seen = new Set<bigint>();
  let last = 0n;
  for (let i = 0; i < 10000; i++) {
    if (i === 5000) t -= 1000; // clock steps back
    const id = gen.next();
    assert.ok(id > last);
    assert.ok(!seen.has(id));
    seen.add(id);
    last = id;
  }
  const first = new Snowflake(5, () => 1769272125649).next();
  assert.equal(Snowflake.timestampMs(first), 1769272125649);
  assert.ok(first > 2n ** 53n);
});

Deno.test("wire: a message encoded in pieces is the same bytes, and its binary field is not copied", async () => {
  const fixture = decodeMessage(await Deno.readFile(new URL("video.msgpack", dir)));
  assert.equal(fixture.dataType, VIDEO_DATA_TYPE);
  const video = fixture.dataType === VIDEO_DATA_TYPE ? fixture.video : new Uint8Array();
  // The MP4 in three pieces, as the muxer's pages.
  const cut = [0, 100, Math.floor(video.length / 2), video.length];
  const pages = cut.slice(1).map((end, i) => video.subarray(cut[i], end));
  const pieces = encodeMessagePieces({ ...fixture, video: pages });
  assert.deepEqual(joinBytes(pieces), encodeMessage(fixture));
  for (const page of pages) assert.ok(pieces.includes(page), "each page is passed on as it is");
  // Images too, and bins of every header size (bin8, bin16, bin32).
  for (const n of [0, 200, 70_000]) {
    const img: ImageData = {
      dataType: IMAGE_DATA_TYPE,
      sensorName: "cam",
      captureTimestamp: 1769300000.25,
      creationTimestamp: 1769300000.5,
      frameId: 7n,
      deviceName: "box",
      image: new Uint8Array(n).fill(3),
      isEncoded: true,
      detectionResults: null,
      size: [0, 0, 3],
    };
    assert.deepEqual(joinBytes(encodeMessagePieces(img)), encodeMessage(img), `${n} bytes`);
  }
});

Deno.test("MsgpackWriter: strings take the smallest form, ASCII or not, as Python's msgpack writes them", () => {
  const strings = [
    "",
    "a",
    "sensor_name",
    "x".repeat(31),
    "x".repeat(32),
    "y".repeat(300),
    "café",
    "北京 camera",
    "\u007f",
  ];
  for (const s of strings) {
    const w = new MsgpackWriter();
    w.str(s);
    // @msgpack/msgpack chooses fixstr/str8/16/32 by UTF-8 length, as Python's msgpack does.
    assert.deepEqual(w.finish(), msgpackEncode(s), JSON.stringify(s));
  }
});
