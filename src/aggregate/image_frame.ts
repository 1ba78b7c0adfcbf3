/**
 * An ImageData message as the segmenter takes it: a JPEG (its size from the message, or read from the JPEG when the
 * message says 0×0) or raw 3-channel BGR. Anything else is unsupported (the aggregator counts it as dropped).
 *
 * @example
 * ```ts
 * import type { ImageData } from "../bus/message.ts";
 * import { segmentFrameOf } from "./image_frame.ts";
 * declare const msg: ImageData;
 * const frame = segmentFrameOf(msg); // undefined: unsupported
 * ```
 * @module
 */

import type { ImageData } from "../bus/message.ts";
import { jpegSize } from "../codec/jpeg.ts";
import type { SegmentFrame } from "./segmenter.ts";

/** The frame of an ImageData message, or `undefined` when it cannot be encoded (unknown size, not 3 channels). */
export function segmentFrameOf(img: ImageData): SegmentFrame | undefined {
  let [height, width, channels] = img.size;
  if (img.isEncoded) {
    if (width === 0 || height === 0) {
      ({ width, height } = jpegSize(img.image) ?? { width: 0, height: 0 });
    }
    if (width === 0 || height === 0) return undefined;
  } else if (channels !== 3) return undefined;
  return {
    sensor: img.sensorName,
    frameId: img.frameId,
    captureTs: img.captureTimestamp,
    width,
    height,
    format: img.isEncoded ? "jpeg" : "bgr24",
    data: img.image,
  };
}
