/**
 * Serving one recorded file: `GET`/`HEAD` with HTTP Range (206, and 416 for a range past the end), the type from
 * the extension, `?download` as an attachment. The body streams from the file in chunks and closes it at the end,
 * or when the browser goes away (a `<video>` drops connections whenever it seeks).
 *
 * @example
 * ```ts
 * import { serveFile } from "./files.ts";
 * declare const req: Request;
 * const res = await serveFile(req, "/data/videos/cam_20260124_162845_649586.mp4", false);
 * ```
 * @module
 */

import { parseRange } from "./range.ts";

const TYPES: Record<string, string> = { mp4: "video/mp4", json: "application/json; charset=utf-8" };
const CHUNK = 64 * 1024;

/** The response for the regular file at `path` (already checked by `safe_path.ts`). */
export async function serveFile(req: Request, path: string, download: boolean): Promise<Response> {
  const file = await Deno.open(path, { read: true });
  let owned = true;
  try {
    const size = (await file.stat()).size;
    const name = path.slice(path.lastIndexOf("/") + 1);
    const headers = new Headers({
      "content-type": TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream",
      "accept-ranges": "bytes",
      "cache-control": "no-cache",
    });
    if (download) {
      headers.set("content-disposition", `attachment; filename="${name.replace(/[^\w.-]/g, "_")}"`);
    }
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
    const status = range ? 206 : 200;
    if (req.method === "HEAD" || length === 0) return new Response(null, { status, headers });
    await file.seek(start, Deno.SeekMode.Start);
    let left = length;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const buf = new Uint8Array(Math.min(CHUNK, left));
        const n = await file.read(buf);
        if (n === null || n === 0) {
          file.close();
          // The file shrank under us (retention deleted it): end the body short; the browser retries.
          controller.close();
          return;
        }
        left -= n;
        controller.enqueue(buf.subarray(0, n));
        if (left <= 0) {
          file.close();
          controller.close();
        }
      },
      cancel() {
        file.close();
      },
    }, { highWaterMark: 0 });
    owned = false;
    return new Response(body, { status, headers });
  } finally {
    if (owned) file.close();
  }
}
