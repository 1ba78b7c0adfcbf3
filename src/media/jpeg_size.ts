/**
 * Reads a JPEG's width and height from its SOF marker, without decoding: for ImageData whose `size` is missing.
 *
 * @example
 * ```ts
 * import { jpegSize } from "./jpeg_size.ts";
 * const s = jpegSize(await Deno.readFile("test/fixtures/mcity-gs-ne/frames/0000.jpg")); // { width: 1280, height: 960 }
 * ```
 * @module
 */

/** `{ width, height }` of a JPEG, or undefined when no SOF marker is found. */
export function jpegSize(b: Uint8Array): { width: number; height: number } | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    const len = (b[i + 2] << 8) | b[i + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (b[i + 5] << 8) | b[i + 6], width: (b[i + 7] << 8) | b[i + 8] };
    }
    i += 2 + len;
  }
  return undefined;
}

/**
 * Whether a JPEG holds full-range 4:2:0 YCbCr: three components, luma sampled 2×2 and chroma 1×1, with neither
 * ffmpeg's `CS=ITU601` comment (limited range) nor an Adobe marker saying RGB. That is what libjpeg, OpenCV (MSight's
 * `cv2.imencode`), cameras and our RTSP node write; the aggregator's encoder compresses such frames to video range
 * with a look-up table instead of ffmpeg's scaler, and leaves anything else to the scaler.
 *
 * @example
 * ```ts
 * import { jpegIsFullRange420 } from "./jpeg_size.ts";
 * jpegIsFullRange420(await Deno.readFile("test/fixtures/mcity-gs-ne/frames/0000.jpg")); // true
 * ```
 */
export function jpegIsFullRange420(b: Uint8Array): boolean {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return false;
  let sof = false;
  let i = 2;
  while (i + 3 < b.length) {
    if (b[i] !== 0xff) return false;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xda) return sof; // start of scan: every header segment has been seen
    const len = (b[i + 2] << 8) | b[i + 3];
    const body = b.subarray(i + 4, Math.min(b.length, i + 2 + len));
    if (marker === 0xfe && ascii(body, 0, 9) === "CS=ITU601") return false;
    // APP14 "Adobe": byte 11 of its body is the colour transform, 0 = the components are RGB (or CMYK).
    if (marker === 0xee && ascii(body, 0, 5) === "Adobe" && body.length >= 12 && body[11] === 0) return false;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      // body: precision, height(2), width(2), Nf, then per component: id, sampling (H<<4|V), table.
      if (body.length < 15 || body[5] !== 3) return false;
      if (body[7] !== 0x22 || body[10] !== 0x11 || body[13] !== 0x11) return false;
      sof = true;
    }
    i += 2 + len;
  }
  return false;
}

function ascii(b: Uint8Array, start: number, n: number): string {
  return String.fromCharCode(...b.subarray(start, start + n));
}
