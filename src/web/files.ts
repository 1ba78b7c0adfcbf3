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

import { rangedReply } from "./range.ts";

const CHUNK = 64 * 1024;

/** The response for the regular file at `path` (already checked by `safe_path.ts`). */
export async function serveFile(req: Request, path: string, download: boolean): Promise<Response> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    // Deleted by the dumper's retention since it was listed: gone, not a fault of the console.
    if (err instanceof Deno.errors.NotFound) {
      return new Response("no such recording (deleted)\n", { status: 404 });
    }
    throw err;
  }
  let owned = true;
  try {
    const size = (await file.stat()).size;
    const reply = rangedReply(req, path.slice(path.lastIndexOf("/") + 1), size, download);
    if (reply instanceof Response) return reply;
    const { status, headers, start, length } = reply;
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
