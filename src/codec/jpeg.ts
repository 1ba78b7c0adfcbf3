/**
 * Reads a JPEG's width and height from its SOF marker, without decoding: for ImageData whose `size` is missing.
 *
 * @example
 * ```ts
 * import { jpegSize } from "./jpeg.ts";
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
