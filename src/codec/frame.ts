/**
 * The picture that enters an encoder: either a JPEG exactly as it came off the bus (MSight `is_encoded` true), or
 * raw BGR24 pixels (MSight `is_encoded` false).
 *
 * Timestamps are microseconds on any clock that increases within a segment: the aggregator may pass absolute
 * capture times (epoch µs, about 1.7e15, still exact in a double below 2^53) or times relative to the segment's first
 * frame. The encoder copies them to its chunks unchanged and the muxer rebases the first sample to 0, so either works.
 *
 * @example
 * ```ts
 * import type { InputFrame } from "./frame.ts";
 * const frame: InputFrame = {
 *   data: await Deno.readFile("0000.jpg"),
 *   format: "jpeg",
 *   width: 1280,
 *   height: 960,
 *   timestampUs: Math.round(1697230013.10058 * 1e6),
 * };
 * ```
 * @module
 */

/**
 * `jpeg`: a complete JFIF/JPEG file; `bgr24`: width×height×3 bytes, row-major, no padding (OpenCV's layout).
 *
 * @example
 * ```ts
 * import type { FrameFormat } from "./frame.ts";
 * declare const isEncoded: boolean;
 * const format: FrameFormat = isEncoded ? "jpeg" : "bgr24";
 * ```
 */
export type FrameFormat = "jpeg" | "bgr24";

/**
 * One frame to encode.
 *
 * @example
 * ```ts
 * import type { InputFrame } from "./frame.ts";
 * const raw: InputFrame = { data: new Uint8Array(4 * 2 * 3), format: "bgr24", width: 4, height: 2, timestampUs: 0 };
 * ```
 */
export interface InputFrame {
  /** The JPEG file or the raw pixels; the encoder does not keep a reference after `encode()` returns unless stated. */
  data: Uint8Array;
  format: FrameFormat;
  width: number;
  height: number;
  /** Capture time in microseconds (see the module comment for the clock). */
  timestampUs: number;
}

/**
 * Checks the parts of a frame that can be checked without decoding it, returning a reason or `undefined`.
 *
 * @example
 * ```ts
 * import { frameProblem } from "./frame.ts";
 * frameProblem({ data: new Uint8Array(5), format: "bgr24", width: 2, height: 2, timestampUs: 0 });
 * // => "bgr24 frame of 2x2 needs 12 bytes, got 5"
 * ```
 */
export function frameProblem(frame: InputFrame): string | undefined {
  if (
    !Number.isInteger(frame.width) || !Number.isInteger(frame.height) || frame.width < 1 || frame.height < 1
  ) {
    return `invalid frame size ${frame.width}x${frame.height}`;
  }
  if (!Number.isFinite(frame.timestampUs)) return `invalid timestamp ${frame.timestampUs}`;
  if (frame.format === "bgr24") {
    const need = frame.width * frame.height * 3;
    if (frame.data.byteLength !== need) {
      return `bgr24 frame of ${frame.width}x${frame.height} needs ${need} bytes, got ${frame.data.byteLength}`;
    }
  } else if (frame.format === "jpeg") {
    // SOI marker: cheap proof that the bytes are a JPEG before they reach a decoder that would stall on garbage.
    if (frame.data.byteLength < 4 || frame.data[0] !== 0xff || frame.data[1] !== 0xd8) {
      return "jpeg frame lacks SOI";
    }
  } else {
    return `unknown frame format ${String(frame.format)}`;
  }
  return undefined;
}
