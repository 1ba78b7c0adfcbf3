/**
 * One segment being made: frames go to an encoder as they arrive, its chunks go straight into the MP4 muxer, and
 * {@linkcode SegmentBuilder.finish} flushes both and returns the file with the frame list. Only compressed data is
 * held (the muxer's samples), so memory does not grow with pixels.
 *
 * @example
 * ```ts
 * import type { SegmentFrame } from "./segmenter.ts";
 * import { SegmentBuilder } from "./segment_builder.ts";
 * declare const frame: SegmentFrame;
 * const b = new SegmentBuilder({ kind: "ffmpeg", config: { codec: "libx264", width: 1280, height: 960, framerate: 10 } });
 * b.add(frame); // SegmentFrame from the segmenter
 * const { mp4, frameIds } = await b.finish();
 * ```
 * @module
 */

import { codecFamily, outputSize } from "../encode/config.ts";
import type { EncoderLine } from "../encode/encoder_line.ts";
import { createEncoder } from "../encode/mod.ts";
import type { EncoderConfig, EncoderFallback, EncoderKind } from "../encode/types.ts";
import type { FrameEncoder } from "../encode/types.ts";
import { Mp4SegmentMuxer } from "../mux/mp4_muxer.ts";
import { byteLengthOf } from "../runtime/bytes.ts";
import type { SegmentFrame } from "./segmenter.ts";

/** How to encode a segment. */
export interface SegmentBuilderOptions {
  kind: EncoderKind;
  config: EncoderConfig;
  ffmpegPath?: string;
  /** Called when a hardware codec fell back to software. */
  onFallback?: (info: EncoderFallback) => void;
  /** The most frames the segment will get (`--buffer-size`): lets the muxer write samples as they come. */
  maxFrames?: number;
  /** The sensor's long-lived encoder (ffmpeg backend, x264/x265); absent: an ffmpeg of the segment's own. */
  line?: EncoderLine;
}

/** A finished segment. */
export interface BuiltSegment {
  /** The MP4 file, as pieces to be taken in order (the muxer's pages: never joined, to hold the file once). */
  mp4: Uint8Array[];
  /** The file's size in bytes. */
  mp4Bytes: number;
  frameIds: bigint[];
  captureTimestamps: number[];
  /** Encoded size (odd sizes lose their last row/column). */
  width: number;
  height: number;
  codec: "h264" | "hevc";
  /** Backend and codec that ran, e.g. `ffmpeg:libx264`. */
  encoder: string;
}

/** One segment's encoder and muxer; see the module doc. */
export class SegmentBuilder {
  readonly #encoder: FrameEncoder;
  readonly #muxer: Mp4SegmentMuxer;
  #muxChain: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #first: number | undefined;
  /** The 1/fps slot of the last frame added (its MP4 time is slot/fps). */
  #lastSlot = -1;
  readonly frameIds: bigint[] = [];
  readonly captureTimestamps: number[] = [];

  constructor(readonly opts: SegmentBuilderOptions) {
    const size = outputSize(opts.config.width, opts.config.height);
    this.#muxer = new Mp4SegmentMuxer({
      codec: codecFamily(opts.config.codec ?? "libx264"),
      width: size.width,
      height: size.height,
      fps: opts.config.framerate,
      maxSamples: opts.maxFrames,
    });
    this.#encoder = createEncoder(
      opts.kind,
      {
        output: (chunk, metadata) => {
          this.#muxChain = this.#muxChain.then(() => this.#muxer.add(chunk, metadata)).catch((e) => {
            this.#error ??= e as Error;
          });
        },
        error: (e) => (this.#error ??= e),
        fallback: opts.onFallback,
      },
      { ffmpegPath: opts.ffmpegPath },
      opts.line,
    );
    this.#encoder.configure(opts.config);
  }

  /** Frames in the segment so far. */
  get frames(): number {
    return this.frameIds.length;
  }

  /**
   * Queues a frame for encoding. Its MP4 time is its capture time (relative to the segment's first frame) rounded to
   * the 1/fps grid, and at least one slot after the frame before: see {@linkcode mediaSlot}.
   */
  add(frame: SegmentFrame): void {
    if (this.#error) return;
    this.#first ??= frame.captureTs;
    this.frameIds.push(frame.frameId);
    this.captureTimestamps.push(frame.captureTs);
    const fps = this.opts.config.framerate;
    this.#lastSlot = mediaSlot(frame.captureTs - this.#first, fps, this.#lastSlot);
    try {
      this.#encoder.encode({
        data: frame.data,
        format: frame.format,
        width: frame.width,
        height: frame.height,
        timestampUs: Math.round(this.#lastSlot * 1e6 / fps),
      });
    } catch (err) {
      this.#error ??= err as Error;
    }
  }

  /** Flushes the encoder and the muxer; rejects when the segment could not be made. */
  async finish(): Promise<BuiltSegment> {
    try {
      if (this.#error) throw this.#error;
      await this.#encoder.flush();
      await this.#muxChain;
      if (this.#error) throw this.#error;
      const mp4 = await this.#muxer.finalize();
      const codec = this.#encoder.codecInUse ?? this.opts.config.codec ?? "libx264";
      const size = outputSize(this.opts.config.width, this.opts.config.height);
      return {
        mp4,
        mp4Bytes: byteLengthOf(mp4),
        frameIds: this.frameIds,
        captureTimestamps: this.captureTimestamps,
        width: size.width,
        height: size.height,
        codec: codecFamily(codec) === "hevc" ? "hevc" : "h264",
        encoder: `${this.opts.kind}:${codec}`,
      };
    } finally {
      this.#encoder.close();
    }
  }

  /** Drops the segment (shutdown after the grace period, or an error elsewhere). */
  abort(): void {
    this.#encoder.close();
    // The segment is being dropped (and counted by the caller): a muxer error on the way out changes nothing.
    void this.#muxer.cancel().catch(() => {});
  }
}

/**
 * The 1/fps slot a frame is shown in: its capture time (seconds after the segment's first frame) rounded to the
 * grid, and never earlier than the slot after `lastSlot`. Any capture times (duplicates, sub-millisecond gaps, jumps
 * backwards, arrival jitter) thus give strictly increasing MP4 times at least 1/fps apart: a player or ffmpeg that
 * times frames on a 1/fps base (ffmpeg does, decoding to `-f null`) never sees two in one tick. The exact capture
 * times travel in the message's `capture_timestamps`.
 *
 * @example
 * ```ts
 * import { mediaSlot } from "./segment_builder.ts";
 * mediaSlot(0.024, 10, 0); // => 1 (rounds to 0, which is taken)
 * ```
 */
export function mediaSlot(relativeS: number, fps: number, lastSlot: number): number {
  const slot = Number.isFinite(relativeS) ? Math.round(relativeS * fps) : lastSlot + 1;
  return Math.max(slot, lastSlot + 1);
}
