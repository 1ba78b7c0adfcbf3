/**
 * Byte sequences held in pieces: a large message (a segment's MP4, its MessagePack envelope) is passed on as the
 * list of its parts, in order, so that it is never copied just to be contiguous.
 *
 * @example
 * ```ts
 * import { byteLengthOf, joinBytes } from "./bytes.ts";
 * const parts = [new Uint8Array([1, 2]), new Uint8Array([3])];
 * byteLengthOf(parts); // 3
 * joinBytes(parts); // Uint8Array [1, 2, 3]
 * ```
 * @module
 */

/**
 * Total length of the pieces.
 *
 * @example
 * ```ts
 * import { byteLengthOf } from "./bytes.ts";
 * byteLengthOf([new Uint8Array(2), new Uint8Array(5)]); // 7
 * ```
 */
export function byteLengthOf(pieces: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of pieces) n += p.byteLength;
  return n;
}

/**
 * One buffer holding the pieces in order (a copy; a single piece is returned as it is).
 *
 * @example
 * ```ts
 * import { joinBytes } from "./bytes.ts";
 * declare const pieces: Uint8Array[];
 * await Deno.writeFile("segment.mp4", joinBytes(pieces));
 * ```
 */
export function joinBytes(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(byteLengthOf(pieces));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
