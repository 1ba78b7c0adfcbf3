/**
 * One ffmpeg process of the capture: spawns it, splits its stdout into frames, reads its stderr, and pairs each
 * frame with the `showinfo` line that carries its stream timestamp and size. It owns the process: `done` settles
 * only after ffmpeg has exited and both pipes are drained, and `kill()` is safe at any time.
 *
 * @example
 * ```ts
 * import { FfmpegSession } from "./capture_session.ts";
 * const s = FfmpegSession.spawn({
 *   ffmpegPath: "ffmpeg", args, format: "jpeg",
 *   onFrame: (f) => console.log(f.width, f.height, f.ptsTime),
 *   onLine: (l) => { if (l.kind === "error") console.log(l.text); },
 * });
 * setTimeout(() => s.kill("SIGTERM"), 5000);
 * console.log(await s.done); // { code: 255, signal: null }
 * ```
 * @module
 */

import { FatalError } from "../runtime/errors.ts";
import { ByteQueue } from "./capture_byte_queue.ts";
import type { FrameFormat } from "./capture_ffmpeg.ts";
import { JpegSplitter } from "./capture_jpeg_splitter.ts";
import { classifyFfmpegLine, type FfmpegLine, LineSplitter } from "./capture_stderr.ts";
import { readReused } from "../runtime/pipe_reader.ts";

/** A frame as it left ffmpeg, before capture-time stamping. */
export interface SessionFrame {
  data: Uint8Array;
  width: number;
  height: number;
  /** Stream timestamp in seconds (NaN when ffmpeg gave none). */
  ptsTime: number;
  /** Wall-clock epoch seconds at which ffmpeg reported the frame (its showinfo line was read). */
  arrival: number;
}

/** How a session ended. */
export interface SessionEnd {
  code: number;
  signal: Deno.Signal | null;
}

/** What {@linkcode FfmpegSession.spawn} needs. */
export interface SessionOptions {
  ffmpegPath: string;
  args: string[];
  format: FrameFormat;
  onFrame: (frame: SessionFrame) => void;
  /** Every stderr line except showinfo frame lines, classified. */
  onLine: (line: FfmpegLine) => void;
  /** Wall clock in epoch seconds (injectable for tests). */
  now?: () => number;
}

interface FrameInfo {
  width: number;
  height: number;
  ptsTime: number;
  arrival: number;
}

// If stdout and stderr drift apart by this many frames, something in ffmpeg's output is not one-to-one any more
// (an encoder failure, an unparsed showinfo line): drop the excess rather than grow without bound.
const MAX_UNPAIRED = 32;

/**
 * A running ffmpeg capture process.
 *
 * @example
 * ```ts
 * const session = FfmpegSession.spawn(opts);
 * session.kill("SIGKILL");
 * await session.done;
 * ```
 */
export class FfmpegSession {
  readonly pid: number;
  /** Settles when ffmpeg has exited and its pipes are drained; never rejects. */
  readonly done: Promise<SessionEnd>;
  /** Frames whose bytes or showinfo line had no partner and were discarded. */
  unpaired = 0;
  #child: Deno.ChildProcess;
  #opts: SessionOptions;
  #now: () => number;
  #infos: FrameInfo[] = [];
  #jpegs: Uint8Array[] = [];
  #raw = new ByteQueue();
  #jpegSplitter = new JpegSplitter();
  #lastSize: { width: number; height: number } | undefined;
  #exited = false;

  private constructor(child: Deno.ChildProcess, opts: SessionOptions) {
    this.#child = child;
    this.#opts = opts;
    this.#now = opts.now ?? (() => Date.now() / 1000);
    this.pid = child.pid;
    this.done = this.#watch();
  }

  /**
   * Starts ffmpeg. Throws {@linkcode FatalError} (exit 2) when the binary is missing or not executable.
   *
   * @example
   * ```ts
   * const session = FfmpegSession.spawn({ ffmpegPath: "ffmpeg", args, format: "bgr24", onFrame, onLine });
   * ```
   */
  static spawn(opts: SessionOptions): FfmpegSession {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(opts.ffmpegPath, {
        args: opts.args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      const why = err instanceof Deno.errors.NotFound ? "not found" : (err as Error).message;
      throw new FatalError(`cannot run ffmpeg ${JSON.stringify(opts.ffmpegPath)}: ${why}`, 2);
    }
    return new FfmpegSession(child, opts);
  }

  /** Bytes the JPEG splitter skipped as not part of a valid image. */
  get skippedBytes(): number {
    return this.#jpegSplitter.skippedBytes;
  }

  /**
   * Sends `signal` to ffmpeg if it still runs (SIGTERM lets it send an RTSP TEARDOWN; SIGKILL cannot be ignored).
   *
   * @example
   * ```ts
   * session.kill("SIGKILL");
   * ```
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited between the check and the kill.
    }
  }

  async #watch(): Promise<SessionEnd> {
    const pumps = Promise.all([this.#pumpStdout(), this.#pumpStderr()]);
    const status = await this.#child.status;
    this.#exited = true;
    await pumps;
    return { code: status.code, signal: status.signal };
  }

  async #pumpStdout(): Promise<void> {
    try {
      // JPEG bytes are copied by the splitter, so the read buffer can be reused; raw chunks are kept by the queue.
      const chunks = this.#opts.format === "jpeg" ? readReused(this.#child.stdout) : this.#child.stdout;
      for await (const chunk of chunks) {
        if (this.#opts.format === "jpeg") {
          for (const jpeg of this.#jpegSplitter.push(chunk)) this.#jpegs.push(jpeg);
        } else {
          this.#raw.push(chunk);
        }
        this.#pair();
      }
    } catch {
      // The pipe broke because ffmpeg was killed: nothing more to read.
    }
  }

  async #pumpStderr(): Promise<void> {
    const lines = new LineSplitter();
    const handle = (text: string, arrival: number) => {
      const line = classifyFfmpegLine(text);
      if (line.kind === "frame") {
        this.#infos.push({ width: line.width, height: line.height, ptsTime: line.ptsTime, arrival });
        this.#lastSize = { width: line.width, height: line.height };
      } else {
        this.#opts.onLine(line);
      }
    };
    try {
      for await (const chunk of readReused(this.#child.stderr)) {
        const arrival = this.#now();
        for (const text of lines.push(chunk)) handle(text, arrival);
        this.#pair();
      }
    } catch {
      // As for stdout.
    }
    for (const text of lines.flush()) handle(text, this.#now());
    this.#pair();
  }

  /** Emits every frame whose bytes and info have both arrived (they come through different pipes). */
  #pair(): void {
    if (this.#opts.format === "jpeg") {
      while (this.#infos.length > 0 && this.#jpegs.length > 0) {
        const info = this.#infos.shift() as FrameInfo;
        const data = this.#jpegs.shift() as Uint8Array;
        this.#opts.onFrame({ data, ...info });
      }
      while (this.#jpegs.length > MAX_UNPAIRED) {
        // No showinfo line for these: emit them stamped with their arrival rather than lose them.
        const data = this.#jpegs.shift() as Uint8Array;
        const size = this.#lastSize ?? { width: 0, height: 0 };
        this.unpaired++;
        this.#opts.onFrame({ data, ...size, ptsTime: NaN, arrival: this.#now() });
      }
    } else {
      while (this.#infos.length > 0) {
        const info = this.#infos[0];
        const data = this.#raw.take(info.width * info.height * 3);
        if (!data) break;
        this.#infos.shift();
        this.#opts.onFrame({ data, ...info });
      }
    }
    while (this.#infos.length > MAX_UNPAIRED) {
      this.#infos.shift();
      this.unpaired++;
    }
  }
}
