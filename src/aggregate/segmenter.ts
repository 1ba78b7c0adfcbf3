/**
 * Decides which frames go into which segment, per sensor, without touching pixels or codecs: thinning to a
 * real `fps` on a grid of capture times, `bufferSize`/`overlapSize`, closing on full, idle, gap, resolution
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

interface SensorState {
  seq: number;
  open: boolean;
  frames: number;
  width: number;
  height: number;
  format: FrameFormat;
  /** Grid anchor (capture time of the first frame after a reset) and last slot used. */
  anchor: number;
  lastSlot: number;
  lastTs: number;
  /** Wall-clock time (ms) of the last accepted frame, for idle flushes. */
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

  /** Sensors with an open segment. */
  get openSensors(): string[] {
    return [...this.#sensors.entries()].filter(([, s]) => s.open).map(([k]) => k);
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
        anchor: frame.captureTs,
        lastSlot: -1,
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

    // A jump in capture time is an outage: the segment ends before it, and the grid restarts after it.
    if (s.lastTs !== -Infinity && frame.captureTs - s.lastTs > this.opts.gapS) {
      if (s.open) out.push(this.#close(frame.sensor, s, "gap", false));
      s.anchor = frame.captureTs;
      s.lastSlot = -1;
      s.tail = [];
    } else if (frame.captureTs <= s.lastTs) {
      out.push({ kind: "drop", sensor: frame.sensor, frame, reason: "late" });
      return out;
    }

    const slot = Math.round((frame.captureTs - s.anchor) * this.opts.fps);
    if (slot <= s.lastSlot) {
      out.push({ kind: "drop", sensor: frame.sensor, frame, reason: "thinned" });
      return out;
    }

    if (s.open && (frame.width !== s.width || frame.height !== s.height || frame.format !== s.format)) {
      // Overlap frames of another size cannot open the new segment: it starts clean.
      out.push(this.#close(frame.sensor, s, "resolution", false));
    }
    s.lastSlot = slot;
    s.lastTs = frame.captureTs;
    s.lastArrival = nowMs;
    s.width = frame.width;
    s.height = frame.height;
    s.format = frame.format;

    if (!s.open) this.#open(frame.sensor, s, out);
    out.push({ kind: "frame", sensor: frame.sensor, seq: s.seq, frame, overlap: false });
    s.frames++;
    if (this.opts.overlapSize > 0) {
      s.tail.push(frame);
      if (s.tail.length > this.opts.overlapSize) s.tail.shift();
    }
    if (s.frames >= this.opts.bufferSize) out.push(this.#close(frame.sensor, s, "full", true));
    return out;
  }

  /** Closes segments idle for longer than `maxIdleS`; call it about once a second. */
  tick(nowMs = Date.now()): SegmentEvent[] {
    const out: SegmentEvent[] = [];
    for (const [sensor, s] of this.#sensors) {
      if (s.open && nowMs - s.lastArrival > this.opts.maxIdleS * 1000) {
        out.push(this.#close(sensor, s, "idle", false));
        s.tail = [];
      }
    }
    return out;
  }

  /** Closes every open segment (shutdown). */
  closeAll(reason: FlushReason = "shutdown"): SegmentEvent[] {
    const out: SegmentEvent[] = [];
    for (const [sensor, s] of this.#sensors) if (s.open) out.push(this.#close(sensor, s, reason, false));
    return out;
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
