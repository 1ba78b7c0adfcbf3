/**
 * One ffmpeg process of the capture: spawns it, splits its stdout into frames, reads its stderr, and pairs
 * each frame with the reports that carry its stream timestamp, its arrival time and (raw frames) its size. It
 * owns the process: `done` settles only after ffmpeg has exited and both pipes are drained, and `kill()` is
 * safe at any time. Why stderr is read lazily: docs/design.md, "Capture".
 *
 * @example
 * ```ts
 * import { FfmpegSession } from "./session.ts";
 * declare const args: string[];
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

import { spawnChild } from "../runtime/children.ts";
import { FatalError } from "../runtime/errors.ts";
import { childEnv } from "../runtime/spawn_env.ts";
import { ByteQueue } from "./byte_queue.ts";
import type { FrameFormat } from "../codec/frame.ts";
import { JpegSplitter } from "./jpeg_splitter.ts";
import { jpegSize } from "../codec/jpeg.ts";
import { classifyFfmpegLine, type FfmpegLogLine, LineSplitter } from "./stderr.ts";
import { readReused } from "../runtime/pipe_reader.ts";

/** A frame as it left ffmpeg, before capture-time stamping. */
export interface SessionFrame {
  data: Uint8Array;
  width: number;
  height: number;
  /** Stream timestamp in seconds (NaN when ffmpeg gave none). */
  ptsTime: number;
  /**
   * Wall-clock epoch seconds at which the frame left ffmpeg's decoder (ffmpeg's report), or at which its report was
   * read when ffmpeg gave no clock report.
   */
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
  /** Every stderr line except frame reports, classified. */
  onLine: (line: FfmpegLogLine) => void;
  /** Wall clock in epoch seconds (injectable for tests). */
  now?: () => number;
}

interface FrameInfo {
  /** From showinfo, for raw frames only; a JPEG's comes from its header. */
  width?: number;
  height?: number;
  ptsTime: number;
  /** NaN until the clock report has been read. */
  arrival: number;
}

// If stdout and stderr drift apart by this many frames, something in ffmpeg's output is not one-to-one any more
// (an encoder failure, an unparsed frame line): drop the excess rather than grow without bound.
const MAX_UNPAIRED = 32;

/**
 * A running ffmpeg capture process.
 *
 * @example
 * ```ts
 * declare const opts: SessionOptions;
 * const session = FfmpegSession.spawn(opts);
 * session.kill("SIGKILL");
 * await session.done;
 * ```
 */
export class FfmpegSession {
  readonly pid: number;
  /** Settles when ffmpeg has exited and its pipes are drained; never rejects. */
  readonly done: Promise<SessionEnd>;
  /** Frames emitted without their reports (stamped with their read time) plus reports that never got a frame. */
  unpaired = 0;
  #child: Deno.ChildProcess;
  #opts: SessionOptions;
  #now: () => number;
  #infos: FrameInfo[] = [];
  #jpegs: Uint8Array[] = [];
  #raw = new ByteQueue();
  #jpegSplitter = new JpegSplitter();
  #lastSize: { width: number; height: number } | undefined;
  /** The value of the last `report` line, waiting for the key line that says what it was. */
  #report: number | undefined;
  #exited = false;
  /** Frames have flowed: stderr is now read on demand (see the module doc). */
  #onDemand = false;
  #pollAsked = false;
  #wakeStderr: (() => void) | undefined;

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
   * declare const args: string[];
   * declare const onFrame: SessionOptions["onFrame"], onLine: SessionOptions["onLine"];
   * const session = FfmpegSession.spawn({ ffmpegPath: "ffmpeg", args, format: "bgr24", onFrame, onLine });
   * ```
   */
  static spawn(opts: SessionOptions): FfmpegSession {
    let child: Deno.ChildProcess;
    try {
      // Own process group, owned by the node, which stops it (see src/runtime/children.ts).
      child = spawnChild(opts.ffmpegPath, {
        args: opts.args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        ...childEnv(),
      });
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
   * declare const session: FfmpegSession;
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

  /**
   * Reads stderr once soon, even if no frame is waiting: error lines then surface within a watchdog tick while
   * frames flow. (Each call may cost one extra wake-up, when the next report is written.)
   *
   * @example
   * ```ts
   * declare const session: FfmpegSession;
   * setInterval(() => session.pollStderr(), 1000);
   * ```
   */
  pollStderr(): void {
    this.#pollAsked = true;
    this.#kickStderr();
  }

  async #watch(): Promise<SessionEnd> {
    const pumps = Promise.all([this.#pumpStdout(), this.#pumpStderr()]);
    const status = await this.#child.status;
    this.#exited = true;
    this.#kickStderr();
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
        this.#kickStderr();
      }
    } catch {
      // The pipe broke because ffmpeg was killed: nothing more to read.
    }
  }

  async #pumpStderr(): Promise<void> {
    const lines = new LineSplitter();
    const chunks = readReused(this.#child.stderr)[Symbol.asyncIterator]();
    try {
      for (;;) {
        while (!this.#stderrWanted()) await new Promise<void>((resolve) => (this.#wakeStderr = resolve));
        const next = await chunks.next();
        if (next.done) break;
        this.#pollAsked = false;
        const readAt = this.#now();
        for (const text of lines.push(next.value)) this.#handleLine(text, readAt);
        this.#pair();
      }
    } catch {
      // As for stdout.
    }
    for (const text of lines.flush()) this.#handleLine(text, this.#now());
    this.#pair();
  }

  /** Whether stderr should be read now (always, until frames flow). */
  #stderrWanted(): boolean {
    if (!this.#onDemand || this.#exited || this.#pollAsked) return true;
    // Bytes on stdout with no complete report to pair them with.
    const waiting = this.#opts.format === "jpeg" ? this.#jpegs.length > 0 : this.#raw.size > 0;
    return waiting && !(this.#infos.length > 0 && this.#complete(this.#infos[0]));
  }

  #kickStderr(): void {
    const wake = this.#wakeStderr;
    this.#wakeStderr = undefined;
    wake?.();
  }

  #handleLine(text: string, readAt: number): void {
    const line = classifyFfmpegLine(text);
    switch (line.kind) {
      case "report":
        this.#report = line.us;
        return;
      case "report-key": {
        const us = this.#report ?? NaN;
        this.#report = undefined;
        if (line.key === "pts") {
          this.#infos.push({ ptsTime: us / 1e6, arrival: NaN });
        } else {
          const last = this.#infos.at(-1);
          if (last && Number.isNaN(last.arrival)) last.arrival = Number.isFinite(us) ? us / 1e6 : readAt;
        }
        return;
      }
      case "size": {
        const last = this.#infos.at(-1);
        if (last && last.width === undefined) Object.assign(last, { width: line.width, height: line.height });
        return;
      }
      default:
        this.#opts.onLine(line);
    }
  }

  /** Whether a frame's reports are all in (or a later frame's are, so one of this one's was lost). */
  #complete(info: FrameInfo): boolean {
    if (this.#infos.length > 1) return true;
    return !Number.isNaN(info.arrival) && (this.#opts.format === "jpeg" || info.width !== undefined);
  }

  /** The arrival of a paired frame: ffmpeg's clock, or now if its clock report never came. */
  #arrival(info: FrameInfo): number {
    return Number.isNaN(info.arrival) ? this.#now() : info.arrival;
  }

  #emit(frame: SessionFrame): void {
    this.#onDemand = true;
    this.#opts.onFrame(frame);
  }

  /** A JPEG's size from its header; the last good one if this header is unreadable (the splitter checked SOI/EOI). */
  #jpegSize(data: Uint8Array): { width: number; height: number } {
    const size = jpegSize(data);
    if (size) this.#lastSize = size;
    return size ?? this.#lastSize ?? { width: 0, height: 0 };
  }

  /** Emits every frame whose bytes and info have both arrived (they come through different pipes). */
  #pair(): void {
    if (this.#opts.format === "jpeg") {
      while (this.#infos.length > 0 && this.#jpegs.length > 0 && this.#complete(this.#infos[0])) {
        const info = this.#infos.shift() as FrameInfo;
        const data = this.#jpegs.shift() as Uint8Array;
        const size = this.#jpegSize(data);
        this.#emit({ data, ...size, ptsTime: info.ptsTime, arrival: this.#arrival(info) });
      }
      while (this.#jpegs.length > MAX_UNPAIRED) {
        // No frame line for these: emit them stamped with their arrival rather than lose them.
        const data = this.#jpegs.shift() as Uint8Array;
        const size = this.#jpegSize(data);
        this.unpaired++;
        this.#emit({ data, ...size, ptsTime: NaN, arrival: this.#now() });
      }
    } else {
      while (this.#infos.length > 0 && this.#complete(this.#infos[0])) {
        const info = this.#infos[0];
        const { width = 0, height = 0, ptsTime } = info;
        if (width * height === 0) {
          // A line without a size cannot cut raw bytes (the raw arguments ask for showinfo, which always has one).
          this.#infos.shift();
          this.unpaired++;
          continue;
        }
        const data = this.#raw.take(width * height * 3);
        if (!data) break;
        this.#infos.shift();
        this.#emit({ data, width, height, ptsTime, arrival: this.#arrival(info) });
      }
    }
    while (this.#infos.length > MAX_UNPAIRED) {
      this.#infos.shift();
      this.unpaired++;
    }
  }
}
