/**
 * Reads a subprocess pipe into one reused buffer, for the per-frame pipes of ffmpeg.
 *
 * Deno's default reader allocates and zero-fills a fresh 64 KiB buffer for every read; a BYOB reader fills
 * the same buffer every time (what that saved: docs/design.md, "Capture").
 *
 * @example
 * ```ts
 * import { readReused } from "./pipe_reader.ts";
 * const child = new Deno.Command("ffmpeg", { args: ["-version"], stdout: "piped" }).spawn();
 * for await (const chunk of readReused(child.stdout)) {
 *   console.log(chunk.byteLength); // use or copy `chunk` before the next iteration: its bytes are then overwritten
 * }
 * ```
 * @module
 */

/**
 * Yields the bytes of `stream` as views of one buffer of `size` bytes, each valid until the next iteration; ends at
 * EOF. Leaving the loop early cancels the stream. Streams that are not byte streams are read the usual way.
 *
 * @example
 * ```ts
 * declare const child: Deno.ChildProcess;
 * const text = new TextDecoder();
 * for await (const chunk of readReused(child.stderr)) console.log(text.decode(chunk, { stream: true }));
 * ```
 */
export async function* readReused(
  stream: ReadableStream<Uint8Array>,
  size = 64 * 1024,
): AsyncGenerator<Uint8Array, void, undefined> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = stream.getReader({ mode: "byob" });
  } catch {
    yield* stream; // not a byte stream
    return;
  }
  let buffer: ArrayBuffer = new ArrayBuffer(size);
  let ended = false;
  try {
    for (;;) {
      // The read transfers `buffer` to the stream and hands it back inside `value`.
      const { value, done } = await reader.read(new Uint8Array(buffer, 0, size));
      if (done || !value) {
        ended = true;
        return;
      }
      buffer = value.buffer as ArrayBuffer;
      yield value;
    }
  } finally {
    // The consumer left early; a stream that already failed has nothing left to cancel.
    if (!ended) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
