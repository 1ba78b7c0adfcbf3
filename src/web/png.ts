/**
 * A small PNG encoder for raw BGR frames from the bus (MSight's unencoded ImageData), so the console can show them
 * without ffmpeg: 8-bit RGB, filter 0 on every row, deflated with the platform's `CompressionStream` (zlib format,
 * which is what PNG's IDAT holds).
 *
 * @example
 * ```ts
 * import { bgrToPng } from "./png.ts";
 * const png = await bgrToPng(new Uint8Array(2 * 2 * 3), 2, 2);
 * ```
 * @module
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309), as PNG chunks carry. */
export function crc32(bytes: Uint8Array, crc = 0xffffffff): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, (crc32(out.subarray(4, 8 + data.length)) ^ 0xffffffff) >>> 0);
  return out;
}

/** Encodes `height`×`width` BGR pixels (row-major, 3 bytes each; a 4th channel is dropped) as a PNG file. */
export async function bgrToPng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels = 3,
): Promise<Uint8Array> {
  if (channels !== 3 && channels !== 4) throw new RangeError(`cannot show ${channels}-channel pixels`);
  if (pixels.length < width * height * channels) {
    throw new RangeError(`${pixels.length} bytes is too few for ${width}x${height}x${channels}`);
  }
  const raw = new Uint8Array(height * (1 + width * 3));
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0;
    let p = y * width * channels;
    for (let x = 0; x < width; x++, p += channels) {
      raw[o++] = pixels[p + 2];
      raw[o++] = pixels[p + 1];
      raw[o++] = pixels[p];
    }
  }
  const z = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer(),
  );
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, filter 0, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", z),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, at), (at += p.length);
  return out;
}
