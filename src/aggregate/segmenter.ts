/**
 * Decides which frames go into which segment, per sensor, without touching pixels or codecs: thinning a source
 * faster than `fps` to it while keeping every frame of one that is not (a probe of a sensor's first seconds, then
 * a frame budget; {@linkcode FrameBudget}), `bufferSize`/`overlapSize`, closing on full, idle, gap, resolution
 * change and shutdown, dropping duplicates and late frames. The aggregator feeds it every frame and acts on
 * the events it returns (open a segment, encode a frame, close a segment). The rules in full: docs/design.md,
 * "Aggregate".
 *
 * @example
 * ```ts
 * import { Segmenter } from "./segmenter.ts";
 * declare const jpeg: Uint8Array;
 * const seg = new Segmenter({ fps: 10, bufferSize: 100, overlapSize: 0, maxIdleS: 5, gapS: 2 });
 * for (const ev of seg.push({ sensor: "cam", frameId: 1n, captureTs: 1000, width: 1280, height: 960, data: jpeg, format: "jpeg" })) {
 *   console.log(ev.kind); // "open", then "frame"
 * }
 * ```
 * @module
 */

import type { FrameFormat } from "../codec/frame.ts";

/** One frame as the segmenter sees it; `data` is carried along untouched (JPEG or raw bytes). */
export interface SegmentFrame {
  sensor: string;
  frameId: bigint;
  /** Capture time, epoch seconds. */
  captureTs: number;
  width: number;
  height: number;
  format: FrameFormat;
  data: Uint8Array;
}

/** Why a segment was closed. */
export type FlushReason = "full" | "idle" | "gap" | "resolution" | "shutdown";

/** Why a frame was not used. */
export type DropReason = "thinned" | "duplicate" | "late";

/** What the aggregator must do, in order. `seq` numbers a sensor's segments from 0. */
export type SegmentEvent =
  | { kind: "open"; sensor: string; seq: number; width: number; height: number; format: FrameFormat }
  | { kind: "frame"; sensor: string; seq: number; frame: SegmentFrame; overlap: boolean }
  | { kind: "close"; sensor: string; seq: number; reason: FlushReason; frames: number }
  | { kind: "drop"; sensor: string; frame: SegmentFrame; reason: DropReason };

/** Segmenting settings (flags of the aggregator). */
export interface SegmenterOptions {
  fps: number;
  bufferSize: number;
  overlapSize: number;
  /** Close a sensor's open segment after this many seconds without frames. */
  maxIdleS: number;
  /** Close the segment when the next frame's capture time is this many seconds after the last one. */
  gapS: number;
  /** How many recent frame ids per sensor are remembered to drop duplicates. */
  dedupWindow?: number;
}

/** The probe at a sensor's start (capture seconds): its frames wait for one verdict on the whole span. */
export const LOOKAHEAD_S = 6;
/** A source this much faster than `fps` still counts as not faster (camera and host clocks drift apart). */
const RATE_TOLERANCE = 0.005;
/** Frames a steady source may show above `fps` × span in a look-ahead half (timestamp jitter). */
const JITTER_FRAMES = 2;

/**
 * Whether a source runs faster than `fps`, judged on the later half of the `windowS` after `t`: more than
 * fps × 1.005 × that half + 2 frames there. The later half of the probe, so that a burst at the start (MSight's RTSP
 * node hands over ~3 s of frames buffered while PyAV probed the stream within half a second, stamped as they come
 * out) does not count: only a source that keeps running fast does.
 *
 * @example
 * ```ts
 * import { runsFast } from "./segmenter.ts";
 * runsFast([2.1, 2.2, 2.3], 0, 4, 10); // => false
 * ```
 */
export function runsFast(aheadTimes: number[], t: number, windowS: number, fps: number): boolean {
  const from = t + windowS / 2, to = t + windowS;
  const n = aheadTimes.filter((x) => x > from && x <= to).length;
  return n > fps * (1 + RATE_TOLERANCE) * (windowS / 2) + JITTER_FRAMES;
}

/**
 * Which frames of one sensor to keep for a target `fps`. While the source does not run faster than fps
 * ({@linkcode runsFast}, judged on the look-ahead), every frame is kept, however its timestamps jitter or bunch.
 * While it does, a budget decides: it grows by fps × 1.005 frames per second of capture time, up to max(2, fps),
 * each kept frame spends one, and a frame is kept when a whole frame is there; so a faster source keeps fps frames a
 * second, spread by its own timing. Frames kept as not-fast spend from the budget too but never leave it in debt,
 * so thinning starts cleanly when a source speeds up.
 *
 * @example
 * ```ts
 * import { FrameBudget } from "./segmenter.ts";
 * const b = new FrameBudget(10);
 * b.take(0, true); // => true (the first frame)
 * b.take(0.04, true); // => false: 0.4 frame in the budget and the source runs fast
 * b.take(0.05, false); // => true: not a fast source, the frame only came early
 * ```
 */
export class FrameBudget {
  #credit = 1;
  #last: number | undefined;
  readonly cap: number;

  constructor(readonly fps: number) {
    this.cap = Math.max(2, fps);
  }

  /** Decides the frame captured at `t` (epoch s); `fast`: whether the source runs faster than fps there. */
  take(t: number, fast: boolean): boolean {
    if (this.#last !== undefined) {
      this.#credit = Math.min(
        this.cap,
        this.#credit + Math.max(0, t - this.#last) * this.fps * (1 + RATE_TOLERANCE),
      );
    }
    this.#last = t;
    // 1e-9: budgets built from float sums of exact 1/fps steps must still count as whole frames.
    if (this.#credit >= 1 - 1e-9) {
      this.#credit -= 1;
      return true;
    }
    if (fast) return false;
    this.#credit = 0;
    return true;
  }

  /** Starts over (after an outage): the next frame is kept. */
  reset(): void {
    this.#credit = 1;
    this.#last = undefined;
  }
}

interface SensorState {
  seq: number;
  open: boolean;
  frames: number;
  width: number;
  height: number;
  format: FrameFormat;
  budget: FrameBudget;
  /** While probing (a new sensor, or after an outage): the frames received, not decided yet, in order. */
  pending: SegmentFrame[];
  probing: boolean;
  /** Does the source run faster than fps (the last verdict)? */
  fast: boolean;
  /** Capture times of the frames received in the last LOOKAHEAD_S (the verdict once probing is over). */
  recent: number[];
  /** Capture time of the newest frame received. */
  lastTs: number;
  /** Wall-clock time (ms) of the last frame received, for idle flushes. */
  lastArrival: number;
  /** The last `overlapSize` accepted frames of the open segment. */
  tail: SegmentFrame[];
  recentIds: Set<bigint>;
  recentOrder: bigint[];
}

/** The per-sensor segmenting state machine; see the module doc. */
export class Segmenter {
  #sensors = new Map<string, SensorState>();
  readonly #window: number;

  constructor(readonly opts: SegmenterOptions) {
    if (opts.overlapSize >= opts.bufferSize && opts.bufferSize > 1) {
      // overlap == buffer would make every segment a copy of the last; the node rejects it before this.
      throw new RangeError(`overlap ${opts.overlapSize} must be smaller than buffer ${opts.bufferSize}`);
    }
    this.#window = opts.dedupWindow ?? Math.max(64, opts.bufferSize * 2);
  }

  /** Sensors with an open segment or frames not decided yet (probing). */
  get openSensors(): string[] {
    return [...this.#sensors.entries()].filter(([, s]) => s.open || s.pending.length > 0).map(([k]) => k);
  }

  /** Takes one frame; `nowMs` is the arrival wall-clock time (for idle flushes). */
  push(frame: SegmentFrame, nowMs = Date.now()): SegmentEvent[] {
    const out: SegmentEvent[] = [];
    let s = this.#sensors.get(frame.sensor);
    if (!s) {
      s = {
        seq: 0,
        open: false,
        frames: 0,
        width: frame.width,
        height: frame.height,
        format: frame.format,
        budget: new FrameBudget(this.opts.fps),
        pending: [],
        probing: true,
        fast: false,
        recent: [],
        lastTs: -Infinity,
        lastArrival: nowMs,
        tail: [],
        recentIds: new Set(),
        recentOrder: [],
      };
      this.#sensors.set(frame.sensor, s);
    }
    if (s.recentIds.has(frame.frameId)) {
      out.push({ kind: "drop", sensor: frame.sensor, frame, reason: "duplicate" });
      return out;
    }
    this.#remember(s, frame.frameId);

    // A jump in capture time is an outage: the segment ends before it, and the budget restarts after it.
    if (s.lastTs !== -Infinity && frame.captureTs - s.lastTs > this.opts.gapS) {
      this.#flushPending(frame.sensor, s, out);
      if (s.open) out.push(this.#close(frame.sensor, s, "gap", false));
      s.budget.reset();
      s.tail = [];
      s.probing = true;
      s.recent = [];
    } else if (frame.captureTs < s.lastTs) {
      out.push({ kind: "drop", sensor: frame.sensor, frame, reason: "late" });
      return out;
    }
    s.lastTs = frame.captureTs;
    s.lastArrival = nowMs;
    s.recent.push(frame.captureTs);
    while (s.recent.length > 0 && s.recent[0] <= frame.captureTs - LOOKAHEAD_S) s.recent.shift();
    if (s.probing) {
      s.pending.push(frame);
      if (frame.captureTs - s.pending[0].captureTs >= LOOKAHEAD_S) this.#flushPending(frame.sensor, s, out);
    } else {
      // Past the probe, the last LOOKAHEAD_S of frames received judge: a burst that only makes up for a stall (a
      // node held up for up to --gap-threshold, then handing over what it buffered) leaves the count there at the
      // source's own rate. Half that span let a 2.6 s stall's burst of 35 frames thin 15 of them.
      s.fast = runsFast(s.recent, frame.captureTs - 2 * LOOKAHEAD_S, 2 * LOOKAHEAD_S, this.opts.fps);
      this.#decide(frame.sensor, s, frame, out);
    }
    return out;
  }

  /** Closes segments idle for longer than `maxIdleS` (deciding their pending frames first); call it about once a second. */
  tick(nowMs = Date.now()): SegmentEvent[] {
    const out: SegmentEvent[] = [];
    for (const [sensor, s] of this.#sensors) {
      if ((s.open || s.pending.length > 0) && nowMs - s.lastArrival > this.opts.maxIdleS * 1000) {
        this.#flushPending(sensor, s, out);
        if (s.open) out.push(this.#close(sensor, s, "idle", false));
        s.tail = [];
      }
    }
    return out;
  }

  /** Decides every pending frame and closes every open segment (shutdown). */
  closeAll(reason: FlushReason = "shutdown"): SegmentEvent[] {
    const out: SegmentEvent[] = [];
    for (const [sensor, s] of this.#sensors) {
      this.#flushPending(sensor, s, out);
      if (s.open) out.push(this.#close(sensor, s, reason, false));
    }
    return out;
  }

  /**
   * Ends the probe: one verdict on the probe's frames (the later half of its span, when it spans a second or more;
   * else not fast), then each frame decided in order.
   */
  #flushPending(sensor: string, s: SensorState, out: SegmentEvent[]): void {
    s.probing = false;
    if (s.pending.length === 0) return;
    const first = s.pending[0].captureTs;
    const span = Math.min(LOOKAHEAD_S, s.lastTs - first);
    s.fast = span >= 1 && runsFast(s.pending.slice(1).map((p) => p.captureTs), first, span, this.opts.fps);
    const frames = s.pending;
    s.pending = [];
    for (const f of frames) this.#decide(sensor, s, f, out);
  }

  #decide(sensor: string, s: SensorState, frame: SegmentFrame, out: SegmentEvent[]): void {
    if (!s.budget.take(frame.captureTs, s.fast)) {
      out.push({ kind: "drop", sensor, frame, reason: "thinned" });
      return;
    }
    if (s.open && (frame.width !== s.width || frame.height !== s.height || frame.format !== s.format)) {
      // Overlap frames of another size cannot open the new segment: it starts clean.
      out.push(this.#close(sensor, s, "resolution", false));
    }
    s.width = frame.width;
    s.height = frame.height;
    s.format = frame.format;

    if (!s.open) this.#open(sensor, s, out);
    out.push({ kind: "frame", sensor, seq: s.seq, frame, overlap: false });
    s.frames++;
    if (this.opts.overlapSize > 0) {
      s.tail.push(frame);
      if (s.tail.length > this.opts.overlapSize) s.tail.shift();
    }
    if (s.frames >= this.opts.bufferSize) out.push(this.#close(sensor, s, "full", true));
  }

  #open(sensor: string, s: SensorState, out: SegmentEvent[]): void {
    s.open = true;
    s.frames = 0;
    out.push({ kind: "open", sensor, seq: s.seq, width: s.width, height: s.height, format: s.format });
    // The previous segment's last frames open this one (only after a "full" close; other closes clear the tail).
    for (const f of s.tail) {
      out.push({ kind: "frame", sensor, seq: s.seq, frame: f, overlap: true });
      s.frames++;
    }
  }

  #close(sensor: string, s: SensorState, reason: FlushReason, keepTail: boolean): SegmentEvent {
    const ev: SegmentEvent = { kind: "close", sensor, seq: s.seq, reason, frames: s.frames };
    s.open = false;
    s.seq++;
    if (!keepTail) s.tail = [];
    return ev;
  }

  #remember(s: SensorState, id: bigint): void {
    s.recentIds.add(id);
    s.recentOrder.push(id);
    if (s.recentOrder.length > this.#window) s.recentIds.delete(s.recentOrder.shift()!);
  }
}
