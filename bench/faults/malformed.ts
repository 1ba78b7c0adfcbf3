/**
 * Malformed bus messages for the fault suite: random bytes, MessagePack of the wrong shape, unknown or missing
 * `data_type`, MSight ImageData/VideoData with fields of the wrong type, and now and then a huge one. Every message
 * made here must be rejected by the intake (and so counted in `msight_messages_malformed_total`): none is a usable
 * frame or segment.
 *
 * @example
 * ```ts
 * import { malformedMessage } from "./malformed.ts";
 * const bytes = malformedMessage(7, { hugeEvery: 1000, hugeBytes: 5 * 2 ** 20 });
 * ```
 * @module
 */

import { encode } from "@msgpack/msgpack";
import { IMAGE_DATA_TYPE, VIDEO_DATA_TYPE } from "../../src/bus/message.ts";

/** How often a huge message comes, and how big it is. */
export interface MalformedOptions {
  /** Every `hugeEvery`-th message is `hugeBytes` of random bytes (0: never). */
  hugeEvery: number;
  hugeBytes: number;
}

/**
 * Random bytes (getRandomValues fills at most 64 KiB per call).
 *
 * @example
 * ```ts
 * randomBytes(5 * 2 ** 20).length; // 5242880
 * ```
 */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

const rnd = (n: number) => Math.floor(Math.random() * n);

/** MSight's ImageData keys with one field of the wrong type, chosen by `i`. */
function badImage(i: number): Record<string, unknown> {
  const good: Record<string, unknown> = {
    data_type: IMAGE_DATA_TYPE,
    sensor_name: "cam",
    capture_timestamp: 1769272125.6,
    creation_timestamp: 1769272125.7,
    frame_id: 7421057263124512769n,
    device_name: "rogue",
    image: new Uint8Array([0xff, 0xd8, 0xff, 0xd9]),
    is_encoded: true,
    detection_results: null,
    size: [960, 1280, 3],
  };
  const wrong: [string, unknown][] = [
    ["sensor_name", 42],
    ["capture_timestamp", "yesterday"],
    ["frame_id", -5],
    ["frame_id", "7421057263124512769"],
    ["image", "not bytes"],
    ["is_encoded", "yes"],
    ["size", "1280x960"],
    ["size", [1e9, 1e9, 3]],
    ["device_name", [1, 2]],
    ["image", null],
  ];
  const [k, v] = wrong[i % wrong.length];
  return { ...good, [k]: v };
}

/** MSight's VideoData keys with one field of the wrong type. */
function badVideo(i: number): Record<string, unknown> {
  const good: Record<string, unknown> = {
    data_type: VIDEO_DATA_TYPE,
    sensor_name: "cam",
    capture_timestamp: 1769272125.6,
    creation_timestamp: 1769272125.7,
    frame_id: 7421057263124512769n,
    device_name: "rogue",
    video: new Uint8Array(16),
    detection_results: null,
    frame_ids: [1n, 2n],
    capture_timestamps: [1.0, 1.1],
  };
  const wrong: [string, unknown][] = [
    ["frame_ids", "1,2"],
    ["frame_ids", [-1]],
    ["capture_timestamps", ["a", "b"]],
    ["video", 5],
    ["video", "mp4"],
    ["sensor_name", { nested: true }],
    ["creation_timestamp", true],
  ];
  const [k, v] = wrong[i % wrong.length];
  return { ...good, [k]: v };
}

/** The `i`-th malformed message (the kinds cycle, so any 1000 consecutive ones hold every kind). */
export function malformedMessage(i: number, opts: MalformedOptions): Uint8Array {
  if (opts.hugeEvery > 0 && i % opts.hugeEvery === opts.hugeEvery - 1) return randomBytes(opts.hugeBytes);
  switch (i % 8) {
    case 0:
      return randomBytes(1 + rnd(512));
    case 1:
      // MessagePack, but not a map: a number, a string, a list, nil, raw bytes.
      return encode([42, "ImageData", [1, 2, 3], null, new Uint8Array(8)][rnd(5)]);
    case 2:
      return encode({ sensor_name: "cam", image: new Uint8Array(4) }); // no data_type
    case 3:
      return encode({ data_type: `msight_core.data.Unknown${rnd(100)}`, sensor_name: "cam" });
    case 4:
      return encode({ data_type: 12345, sensor_name: "cam" });
    case 5:
      return encode(badImage(i >> 3), { useBigInt64: true });
    case 6:
      return encode(badVideo(i >> 3), { useBigInt64: true });
    default: {
      // A truncated real-looking message: the first bytes of a valid map.
      const full = encode(badImage(0), { useBigInt64: true });
      return full.subarray(0, 1 + rnd(full.length - 2));
    }
  }
}
