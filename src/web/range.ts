/**
 * HTTP `Range` requests (RFC 9110 §14) for the recordings, which a `<video>` element seeks with: one byte range per
 * request (browsers ask for one; several would need multipart replies, so they are served whole, as the RFC
 * allows). A range that does not fit the file is 416; a header we cannot read is ignored (200, the whole file).
 *
 * @example
 * ```ts
 * import { parseRange } from "./range.ts";
 * parseRange("bytes=0-99", 1000); // { start: 0, end: 99 }
 * parseRange("bytes=-100", 1000); // { start: 900, end: 999 }
 * parseRange("bytes=2000-", 1000); // "unsatisfiable"
 * ```
 * @module
 */

/** An inclusive byte range within a file. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Longest `Range` header read; longer ones are ignored (served whole). */
const MAX_HEADER = 200;

/**
 * Reads a `Range` header against a file of `size` bytes: a range to serve (206), `"unsatisfiable"` (416), or
 * `undefined` to serve the whole file (no header, another unit, several ranges, or syntax we do not read).
 */
export function parseRange(header: string | null, size: number): ByteRange | "unsatisfiable" | undefined {
  if (header === null || header.length > MAX_HEADER) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === "" && b === "") return undefined;
  if (a === "") {
    // A suffix: the last N bytes.
    const n = Number(b);
    if (!Number.isSafeInteger(n) || n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (!Number.isSafeInteger(start) || start >= size) return "unsatisfiable";
  let end = b === "" ? size - 1 : Number(b);
  if (!Number.isSafeInteger(end) && b !== "") end = size - 1;
  if (end < start) return undefined; // syntactically invalid: RFC 9110 says ignore the header
  return { start, end: Math.min(end, size - 1) };
}

const TYPES: Record<string, string> = { mp4: "video/mp4", json: "application/json; charset=utf-8" };

/** How to answer a `GET`/`HEAD` for a recording: status, headers and the bytes to send (`length` from `start`). */
export interface RangedReply {
  status: 200 | 206;
  headers: Headers;
  start: number;
  length: number;
}

/**
 * The reply for a recording called `name` of `size` bytes under `req`'s `Range`: type from the extension,
 * `download` as an attachment; a ready 416 {@linkcode Response} for a range past the end. Shared by the local files
 * and the S3 objects, so both answer a `<video>` alike.
 */
export function rangedReply(
  req: Request,
  name: string,
  size: number,
  download: boolean,
): RangedReply | Response {
  const headers = new Headers({
    "content-type": TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream",
    "accept-ranges": "bytes",
    "cache-control": "no-cache",
  });
  if (download) headers.set("content-disposition", `attachment; filename="${name.replace(/[^\w.-]/g, "_")}"`);
  const range = parseRange(req.headers.get("range"), size);
  if (range === "unsatisfiable") {
    headers.set("content-range", `bytes */${size}`);
    return new Response(`range ${req.headers.get("range")} is outside the file (${size} bytes)\n`, {
      status: 416,
      headers,
    });
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const length = Math.max(0, end - start + 1);
  headers.set("content-length", String(length));
  if (range) headers.set("content-range", `bytes ${start}-${end}/${size}`);
  return { status: range ? 206 : 200, headers, start, length };
}
