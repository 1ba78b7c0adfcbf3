/**
 * A long-lived encoder per sensor: one ffmpeg kept from one full segment to the next, instead of one per segment,
 * which saves each segment's process start and x264 set-up (figures: docs/design.md, "Encode").
 *
 * Each segment still stands alone: the process forces an IDR frame every `segmentFrames` frames and is kept only
 * while it has taken whole full segments, so the next segment starts on that IDR (overlap frames are simply sent
 * again). A partial segment (idle, gap, shutdown, resolution change) ends the process at its flush, as do other
 * settings and an idle line; the next segment starts a fresh one. Segments take the process in turn, in the order
 * their encoders were made: a segment's frames go in once the one before has flushed, so pictures come out in
 * segment order and each goes back to its own segment's encoder.
 *
 * @example
 * ```ts
 * import { EncoderLine, LineEncoder } from "./encoder_line.ts";
 * const line = new EncoderLine({ segmentFrames: 100, idleMs: 5000 });
 * const enc = new LineEncoder({ output: (c) => console.log(c.type), error: console.error }, line);
 * enc.configure({ width: 1280, height: 960, framerate: 10 });
 * // ... encode 100 frames, flush: the next LineEncoder on this line reuses the process ...
 * await line.close();
 * ```
 * @module
 */

import type { AccessUnit } from "../codec/annexb.ts";
import type { InputFrame } from "../codec/frame.ts";
import { SegmentError } from "../runtime/errors.ts";
import { type ExitInfo, ffmpegArgs, FfmpegProcess, mpjpegHeader, stderrReason } from "./ffmpeg_encoder.ts";
import { EncoderFrontEnd } from "./front_end.ts";
import type { EncoderCodec, EncoderInit } from "./types.ts";

/**
 * Whether a line can keep an encoder of `codec`: x264 and x265 with `-tune zerolatency` give each picture out as
 * soon as its frame is in, so a kept segment's flush needs no end of input. NVENC keeps one process per segment
 * (its fallback to software replays a segment into a new process).
 *
 * @example
 * ```ts
 * import { lineKeeps } from "./encoder_line.ts";
 * lineKeeps("h264_nvenc"); // => false
 * ```
 */
export function lineKeeps(codec: EncoderCodec): boolean {
  return codec === "libx264" || codec === "libx265";
}

/** Settings of an {@linkcode EncoderLine}. */
export interface EncoderLineOptions {
  /** ffmpeg executable (default `ffmpeg` on PATH). */
  ffmpegPath?: string;
  /** Frames of a full segment (the aggregator's `--buffer-size`): the IDR period. */
  segmentFrames: number;
  /** How long a kept process waits for the next segment before it is ended, ms. */
  idleMs: number;
  /** Called when the line starts a process (for a metric). */
  onStart?: () => void;
}

/** A frame in the process whose picture has not come out yet: its timestamp and the segment it goes back to. */
interface Picture {
  timestamp: number;
  to: (au: AccessUnit, timestamp: number) => void;
}

/** One process of a line and what it has taken. */
class LineProcess {
  readonly proc: FfmpegProcess;
  /** Frames written, over all its segments: the next one is an IDR when this is a multiple of the period. */
  frames = 0;
  running = true;
  readonly #pictures: Picture[] = [];
  /** Segments waiting on the exit now (see {@linkcode onExit}). */
  readonly #exitWaiters = new Set<(exit: ExitInfo) => void>();
  #exit: ExitInfo | undefined;

  constructor(path: string, readonly args: string[], readonly codec: EncoderCodec) {
    this.proc = new FfmpegProcess(path, args, codec, (au) => {
      const p = this.#pictures.shift();
      if (!p) throw new Error("ffmpeg produced more pictures than frames it was given");
      p.to(au, p.timestamp);
    }, true);
    this.proc.exited.then((exit) => {
      this.running = false;
      this.#exit = exit;
      for (const w of this.#exitWaiters) w(exit);
      this.#exitWaiters.clear();
    });
  }

  /**
   * Calls `fn` when the process exits (at once, in a microtask, if it has); the returned function takes it back.
   * Not `exited.then()`: a reaction on a promise that lives as long as the process cannot be taken back, and each
   * segment's would hold that segment (its whole MP4) until the process ends, which a kept one never does.
   */
  onExit(fn: (exit: ExitInfo) => void): () => void {
    const exit = this.#exit;
    if (exit) {
      queueMicrotask(() => fn(exit));
      return () => {};
    }
    this.#exitWaiters.add(fn);
    return () => this.#exitWaiters.delete(fn);
  }

  /** Writes one frame (a JPEG behind its multipart header); its picture will go to `to`. */
  write(frame: InputFrame, to: Picture["to"]): Promise<void> {
    this.frames++;
    this.#pictures.push({ timestamp: frame.timestampUs, to });
    // Not awaited: the stream keeps the order. A failed header write needs no report of its own: the frame's
    // write, queued behind it, fails too and the segment reports that.
    if (frame.format === "jpeg") void this.proc.write(mpjpegHeader(frame.data.byteLength)).catch(() => {});
    return this.proc.write(frame.data);
  }
}

/** One sensor's encoder process, kept across its full segments; see the module doc. */
export class EncoderLine {
  readonly segmentFrames: number;
  readonly #path: string;
  readonly #idleMs: number;
  readonly #onStart: (() => void) | undefined;
  #current: LineProcess | undefined;
  /** Every process started and not yet exited (close() ends them all). */
  readonly #live = new Set<LineProcess>();
  /** Resolves when the last turn taken is given back. */
  #turn: Promise<void> = Promise.resolve();
  /** Turns taken and not given back. */
  #taken = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Processes started so far. */
  started = 0;

  constructor(options: EncoderLineOptions) {
    if (!Number.isInteger(options.segmentFrames) || options.segmentFrames < 1) {
      throw new RangeError(`segmentFrames ${options.segmentFrames} is invalid: expected an integer ≥ 1`);
    }
    this.segmentFrames = options.segmentFrames;
    this.#path = options.ffmpegPath ?? "ffmpeg";
    this.#idleMs = options.idleMs;
    this.#onStart = options.onStart;
  }

  /** Whether a process is kept for the next segment. */
  get kept(): boolean {
    return this.#current !== undefined;
  }

  /**
   * Takes the next turn, synchronously, so turns go in the order they are taken: `ready` resolves once every earlier
   * turn was given back; `giveBack` (idempotent) lets the next one go.
   */
  takeTurn(): { ready: Promise<void>; giveBack: () => void } {
    this.#taken++;
    clearTimeout(this.#idle);
    this.#idle = undefined;
    const ready = this.#turn;
    let release!: () => void;
    this.#turn = new Promise<void>((r) => (release = r));
    let given = false;
    return {
      ready,
      giveBack: () => {
        if (given) return;
        given = true;
        this.#taken--;
        release();
        if (this.#taken === 0 && this.#current && !this.#closed) {
          this.#idle = setTimeout(() => this.#current && this.end(this.#current), this.#idleMs);
        }
      },
    };
  }

  /** The process for a segment encoded with `args`: the kept one when it fits, else a fresh one (the old ended). */
  process(args: string[], codec: EncoderCodec): LineProcess {
    if (this.#closed) throw new SegmentError("the encoder line was closed", "encoder_error");
    const cur = this.#current;
    if (
      cur?.running && cur.frames % this.segmentFrames === 0 && cur.args.length === args.length &&
      cur.args.every((a, i) => a === args[i])
    ) return cur;
    if (cur) this.end(cur);
    const lp = new LineProcess(this.#path, args, codec);
    this.started++;
    this.#onStart?.();
    this.#current = lp;
    this.#live.add(lp);
    lp.proc.exited.then(() => {
      this.#live.delete(lp);
      if (this.#current === lp) this.#current = undefined;
    });
    return lp;
  }

  /** Ends `lp` gently: stdin closed, ffmpeg gives out what it holds and exits. */
  end(lp: LineProcess): void {
    if (this.#current === lp) this.#current = undefined;
    void lp.proc.finish();
  }

  /** Kills `lp` (a segment abandoned half-way through it). */
  kill(lp: LineProcess): void {
    if (this.#current === lp) this.#current = undefined;
    lp.proc.kill();
  }

  /** Kills every process of the line and resolves once they have exited; later segments fail. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#current = undefined;
    const live = [...this.#live];
    for (const lp of live) lp.proc.kill();
    await Promise.all(live.map((lp) => lp.proc.exited));
  }
}

/** Why a process left some of a segment's frames without a picture. */
function lostPictures(lp: LineProcess, exit: ExitInfo, missing: number): SegmentError {
  const why = exit.success ? "it ended early" : `exit code ${exit.code}: ${stderrReason(exit.stderr)}`;
  return new SegmentError(
    `ffmpeg (${lp.codec}) returned ${missing} fewer pictures than frames (${why})`,
    "encoder_error",
  );
}

/**
 * A {@linkcode FrameEncoder} for one segment on an {@linkcode EncoderLine} (ffmpeg backend, x264/x265): the same
 * contract as {@linkcode FfmpegEncoder}, the process borrowed from the line.
 *
 * @example
 * ```ts
 * import { EncoderLine, LineEncoder } from "./encoder_line.ts";
 * declare const line: EncoderLine;
 * const enc = new LineEncoder({ output: () => {}, error: console.error }, line);
 * ```
 */
export class LineEncoder extends EncoderFrontEnd {
  readonly kind = "ffmpeg" as const;
  readonly #line: EncoderLine;
  readonly #turn: { ready: Promise<void>; giveBack: () => void };
  #lp: LineProcess | undefined;
  /** Frames this segment wrote while holding the turn (a close then leaves the process mid-segment). */
  #holding = true;
  #sent = 0;
  #pending = 0;
  /** Called when the last picture came out (or the encoder closed) while flush() waits. */
  #wake: (() => void) | undefined;

  constructor(init: EncoderInit, line: EncoderLine) {
    super(init);
    this.#line = line;
    this.#turn = line.takeTurn();
  }

  protected get pending(): number {
    return this.#pending;
  }

  protected async feed(frame: InputFrame): Promise<void> {
    if (!this.#lp) {
      await this.#turn.ready;
      if (this.closed) return;
      const { codec } = this.config;
      if (!lineKeeps(codec)) throw new Error(`an encoder line cannot keep ${codec}`);
      this.useCodec(codec);
      this.#lp = this.#line.process(
        ffmpegArgs(this.config, codec, this.format, this.#line.segmentFrames),
        codec,
      );
    }
    const lp = this.#lp;
    this.#pending++;
    this.#sent++;
    try {
      await lp.write(frame, this.#picture);
    } catch {
      // ffmpeg has gone: its exit status says why.
      this.#line.kill(lp);
      const exit = await lp.proc.exited;
      throw new SegmentError(
        `ffmpeg (${lp.codec}) failed with exit code ${exit.code}: ${stderrReason(exit.stderr)}`,
        "encoder_error",
      );
    }
  }

  protected async finish(): Promise<void> {
    const lp = this.#lp;
    // A process that took whole full segments is kept for the next one; else it drains and exits.
    if (lp && lp.frames % this.#line.segmentFrames !== 0) this.#line.end(lp);
    this.#giveBack();
    if (!lp || this.#pending === 0) return;
    await new Promise<void>((resolve, reject) => {
      // Every picture is handed out before the exit is reported: any still missing then are lost.
      const off = lp.onExit((exit) => {
        if (this.#pending > 0 && !this.closed) reject(lostPictures(lp, exit, this.#pending));
        else resolve();
      });
      this.#wake = () => {
        off();
        resolve();
      };
    });
    this.#wake = undefined;
  }

  protected release(): void {
    // Frames of this segment are in the process and its IDR-aligned end will not come: it cannot serve another.
    if (this.#holding && this.#sent > 0 && this.#lp) this.#line.kill(this.#lp);
    this.#giveBack();
    this.#pending = 0;
    this.#wake?.();
  }

  #giveBack(): void {
    this.#holding = false;
    this.#turn.giveBack();
  }

  #picture = (au: AccessUnit, timestamp: number): void => {
    if (this.closed) return;
    this.#pending--;
    this.output(au, timestamp);
    if (this.#pending === 0) this.#wake?.();
  };
}
