/**
 * MSight's wire format: one MessagePack map per message, `data_type` first, then the fields in MSight's order.
 * {@linkcode encodeMessage} reproduces MSight's bytes exactly (golden fixtures in `test/fixtures/msight-wire/`);
 * {@linkcode decodeMessage} defaults missing fields, ignores unknown keys (as MSight's readers do) and throws
 * {@linkcode MalformedMessageError} with a short `kind` for anything it cannot use, so callers can count by kind.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage } from "./wire.ts";
 * const bytes = await Deno.readFile("test/fixtures/msight-wire/image_jpeg.msgpack");
 * const msg = decodeMessage(bytes);
 * console.log(msg.dataType, msg.frameId); // msight_core.data.image.ImageData 7421057263124512769n
 * console.log(encodeMessage(msg).length === bytes.length); // true
 * ```
 * @module
 */

import { decode } from "@msgpack/msgpack";
import {
  type BusMessage,
  IMAGE_DATA_TYPE,
  type ImageData,
  type SegmentInfo,
  VIDEO_DATA_TYPE,
  type VideoData,
} from "./message.ts";
import { MsgpackWriter } from "./msgpack_writer.ts";
import { byteLengthOf } from "../runtime/bytes.ts";

/** Why a message could not be decoded; `kind` is a stable label for metrics (`not_msgpack`, `bad_field`, ...). */
export class MalformedMessageError extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
    this.name = "MalformedMessageError";
  }
}

/**
 * A message whose large binary field (`image` or `video`) may be given in pieces, in order: a segment's MP4 as the
 * muxer's pages. It is encoded exactly as the same message with the pieces joined.
 */
export type OutgoingMessage =
  | (Omit<ImageData, "image"> & { image: Uint8Array | readonly Uint8Array[] })
  | (Omit<VideoData, "video"> & { video: Uint8Array | readonly Uint8Array[] });

/** Encodes a message as MSight does (byte-identical for MSight's own fields), into one buffer. */
export function encodeMessage(msg: BusMessage): Uint8Array {
  const binary = msg.dataType === IMAGE_DATA_TYPE ? msg.image : msg.video;
  const w = new MsgpackWriter(
    binary.length + 512 + (msg.dataType === VIDEO_DATA_TYPE ? msg.frameIds.length * 20 : 0),
  );
  writeMessage(w, msg, (b) => w.bin(b as Uint8Array));
  return w.finish();
}

/**
 * Encodes a message as {@linkcode encodeMessage} does, as pieces to be sent in order: the binary field is not copied
 * but referenced between the bytes before it and those after it. For a segment of 1000 frames (~30 MB) this saves a
 * copy of the file in memory; the publisher writes the pieces one after another.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "./redis.ts";
 * import type { VideoData } from "./message.ts";
 * import { encodeMessagePieces } from "./wire.ts";
 * declare const bus: RedisBus, segment: VideoData, mp4Pages: Uint8Array[];
 * const pieces = encodeMessagePieces({ ...segment, video: mp4Pages });
 * await bus.publish("aggregated_video", pieces);
 * ```
 */
export function encodeMessagePieces(msg: OutgoingMessage): Uint8Array[] {
  const frames = msg.dataType === VIDEO_DATA_TYPE ? msg.frameIds.length : 0;
  const w = new MsgpackWriter(512 + frames * 20);
  const out: Uint8Array[] = [];
  writeMessage(w, msg, (b) => {
    const pieces = b instanceof Uint8Array ? [b] : b;
    w.binHeader(byteLengthOf(pieces));
    out.push(w.take(), ...pieces);
  });
  out.push(w.finish());
  return out;
}

/** Writes the message's fields in MSight's order; `binary` writes the image or video field's value. */
function writeMessage<B>(
  w: MsgpackWriter,
  msg: (Omit<ImageData, "image"> & { image: B }) | (Omit<VideoData, "video"> & { video: B }),
  binary: (b: B) => void,
): void {
  if (msg.dataType === IMAGE_DATA_TYPE) {
    w.mapHeader(10);
    common(w, msg);
    w.str("image");
    binary(msg.image);
    w.str("is_encoded");
    w.bool(msg.isEncoded);
    w.str("detection_results");
    w.value(msg.detectionResults);
    w.str("size");
    w.arrayHeader(3);
    for (const n of msg.size) w.int(n);
    return;
  }
  const info = msg.info;
  w.mapHeader(10 + (info ? 11 : 0));
  common(w, msg);
  w.str("video");
  binary(msg.video);
  w.str("detection_results");
  w.value(msg.detectionResults);
  w.str("frame_ids");
  w.arrayHeader(msg.frameIds.length);
  for (const id of msg.frameIds) w.int(id);
  w.str("capture_timestamps");
  w.arrayHeader(msg.captureTimestamps.length);
  for (const t of msg.captureTimestamps) w.f64(t);
  if (info) {
    w.str("codec"), w.str(info.codec);
    w.str("width"), w.int(info.width);
    w.str("height"), w.int(info.height);
    w.str("fps"), w.f64(info.fps);
    w.str("frame_count"), w.int(info.frameCount);
    w.str("duration"), w.f64(info.durationS);
    w.str("start"), w.str(info.start);
    w.str("end"), w.str(info.end);
    w.str("encoder"), w.str(info.encoder);
    w.str("flush_reason"), w.str(info.flushReason);
    w.str("overlap_frames"), w.int(info.overlapFrames);
  }
}

function common(w: MsgpackWriter, msg: Omit<BusMessage, "image" | "video">): void {
  w.str("data_type");
  w.str(msg.dataType);
  w.str("sensor_name");
  w.str(msg.sensorName);
  w.str("capture_timestamp");
  w.f64(msg.captureTimestamp);
  w.str("creation_timestamp");
  w.f64(msg.creationTimestamp);
  w.str("frame_id");
  w.int(msg.frameId);
  w.str("device_name");
  w.str(msg.deviceName);
}

type Raw = Record<string, unknown>;

/** Decodes one bus message; throws {@linkcode MalformedMessageError} when it is not usable. */
export function decodeMessage(bytes: Uint8Array): BusMessage {
  let raw: unknown;
  try {
    raw = decode(bytes, { useBigInt64: true });
  } catch (err) {
    throw new MalformedMessageError(
      "not_msgpack",
      `not MessagePack (${(err as Error).message.split("\n")[0]})`,
    );
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw) || raw instanceof Uint8Array) {
    throw new MalformedMessageError("not_a_map", `expected a MessagePack map, got ${describe(raw)}`);
  }
  const m = raw as Raw;
  const dataType = m["data_type"];
  if (dataType === IMAGE_DATA_TYPE) return decodeImage(m);
  if (dataType === VIDEO_DATA_TYPE) return decodeVideo(m);
  if (dataType === undefined) throw new MalformedMessageError("no_data_type", "message has no data_type");
  throw new MalformedMessageError(
    "unknown_data_type",
    `unknown data_type ${JSON.stringify(String(dataType))}`,
  );
}

function decodeImage(m: Raw): ImageData {
  const size = m["size"];
  let dims: [number, number, number] = [0, 0, 0];
  if (size !== undefined && size !== null) {
    if (!Array.isArray(size) || size.length < 2 || size.length > 3 || !size.every(isCount)) {
      throw bad("size", size, "[height, width, channels]");
    }
    dims = [Number(size[0]), Number(size[1]), size.length === 3 ? Number(size[2]) : 1];
  }
  const image = bytesField(m, "image");
  const isEncoded = boolField(m, "is_encoded", true);
  if (!isEncoded && dims[0] * dims[1] * dims[2] !== image.length) {
    throw new MalformedMessageError(
      "bad_field",
      `raw image of ${image.length} bytes does not match size [${dims.join(", ")}]`,
    );
  }
  return {
    dataType: IMAGE_DATA_TYPE,
    ...commonFields(m),
    image,
    isEncoded,
    detectionResults: m["detection_results"] ?? null,
    size: dims,
  };
}

function decodeVideo(m: Raw): VideoData {
  const ids = m["frame_ids"] ?? [];
  if (!Array.isArray(ids) || !ids.every(isId)) throw bad("frame_ids", ids, "a list of integers");
  const times = m["capture_timestamps"] ?? [];
  if (!Array.isArray(times) || !times.every((t) => typeof t === "number" || typeof t === "bigint")) {
    throw bad("capture_timestamps", times, "a list of numbers");
  }
  const msg: VideoData = {
    dataType: VIDEO_DATA_TYPE,
    ...commonFields(m),
    video: bytesField(m, "video"),
    detectionResults: m["detection_results"] ?? null,
    frameIds: ids.map((x) => BigInt(x as number | bigint)),
    captureTimestamps: times.map(Number),
  };
  if (typeof m["codec"] === "string") {
    const num = (k: string) => (typeof m[k] === "number" || typeof m[k] === "bigint") ? Number(m[k]) : 0;
    const str = (k: string) => typeof m[k] === "string" ? m[k] as string : "";
    const info: SegmentInfo = {
      codec: str("codec"),
      width: num("width"),
      height: num("height"),
      fps: num("fps"),
      frameCount: num("frame_count"),
      durationS: num("duration"),
      start: str("start"),
      end: str("end"),
      encoder: str("encoder"),
      flushReason: str("flush_reason"),
      overlapFrames: num("overlap_frames"),
    };
    msg.info = info;
  }
  return msg;
}

function commonFields(m: Raw) {
  return {
    sensorName: strField(m, "sensor_name", ""),
    captureTimestamp: numField(m, "capture_timestamp"),
    creationTimestamp: numField(m, "creation_timestamp"),
    frameId: idField(m, "frame_id"),
    deviceName: strField(m, "device_name", ""),
  };
}

function isCount(x: unknown): boolean {
  return (typeof x === "number" && Number.isInteger(x) && x >= 0 && x < 1e6) ||
    (typeof x === "bigint" && x >= 0n && x < 1000000n);
}

function isId(x: unknown): boolean {
  return (typeof x === "number" && Number.isInteger(x) && x >= 0) || (typeof x === "bigint" && x >= 0n);
}

function strField(m: Raw, key: string, dflt: string): string {
  const v = m[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string") throw bad(key, v, "a string");
  return v;
}

function numField(m: Raw, key: string): number {
  const v = m[key];
  if (v === undefined || v === null) return 0;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "bigint") return Number(v);
  throw bad(key, v, "a number");
}

function idField(m: Raw, key: string): bigint {
  const v = m[key];
  if (v === undefined || v === null) return 0n;
  if (isId(v)) return BigInt(v as number | bigint);
  throw bad(key, v, "a non-negative integer");
}

function boolField(m: Raw, key: string, dflt: boolean): boolean {
  const v = m[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw bad(key, v, "a boolean");
  return v;
}

function bytesField(m: Raw, key: string): Uint8Array {
  const v = m[key];
  if (v instanceof Uint8Array) return v;
  throw bad(key, v, "bytes");
}

function bad(key: string, v: unknown, expected: string): MalformedMessageError {
  return new MalformedMessageError("bad_field", `field ${key} is ${describe(v)}, expected ${expected}`);
}

function describe(v: unknown): string {
  if (v === null) return "nil";
  if (v === undefined) return "missing";
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "object") return "a map";
  return `${typeof v} ${String(v)}`;
}
