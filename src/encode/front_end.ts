/**
 * What both encoder backends share: the WebCodecs-like state machine, the checks of `configure()` and `encode()`,
 * the queue that runs a backend's steps in call order, failure handling and the making of chunks. A backend supplies
 * the steps: take one frame, finish the segment, release what it holds.
 *
 * One encoder makes one segment (the aggregator makes an encoder per segment; a backend may keep its process across
 * them, see encoder_line.ts): configure once, encode the frames (one size, one format, timestamps increasing), flush
 * once, close.
 *
 * @example
 * ```ts
 * import { EncoderFrontEnd } from "./front_end.ts";
 * import type { InputFrame } from "../codec/frame.ts";
 * class NullEncoder extends EncoderFrontEnd {
 *   readonly kind = "ffmpeg" as const;
 *   protected get pending(): number {
 *     return 0;
 *   }
 *   protected async feed(_frame: InputFrame): Promise<void> {}
 *   protected async finish(): Promise<void> {}
 *   protected release(): void {}
 * }
 * ```
 * @module
 */

import type { AccessUnit } from "../codec/annexb.ts";
import { type FrameFormat, frameProblem, type InputFrame } from "../codec/frame.ts";
import { decoderConfigFor, normalizeConfig } from "./config.ts";
import { SerialQueue } from "./serial_queue.ts";
import type {
  ChunkMetadata,
  EncoderCodec,
  EncoderConfig,
  EncoderFallback,
  EncoderInit,
  EncoderKind,
  EncoderState,
  FrameEncoder,
} from "./types.ts";

/** The shared half of a {@linkcode FrameEncoder}; see the module doc. */
export abstract class EncoderFrontEnd implements FrameEncoder {
  abstract readonly kind: EncoderKind;
  readonly #init: EncoderInit;
  #state: EncoderState = "unconfigured";
  #config: Required<EncoderConfig> | undefined;
  #format: FrameFormat | undefined;
  #lastTimestamp = -Infinity;
  #flushed = false;
  #codecInUse: EncoderCodec | undefined;
  #sentConfig = false;
  /** Frames accepted by encode() whose step has not run yet (the backend is slower than the camera). */
  #waiting = 0;
  #failure: Error | undefined;
  readonly #queue = new SerialQueue(() => this.#state === "closed", (e) => this.#fail(e));

  constructor(init: EncoderInit) {
    this.#init = init;
  }

  get state(): EncoderState {
    return this.#state;
  }
  get encodeQueueSize(): number {
    return this.#waiting + this.pending;
  }
  get codecInUse(): EncoderCodec | undefined {
    return this.#codecInUse;
  }

  configure(config: EncoderConfig): void {
    if (this.#state !== "unconfigured") {
      throw new DOMException(
        `configure() while ${this.#state}: one encoder makes one segment`,
        "InvalidStateError",
      );
    }
    this.#config = normalizeConfig(config);
    this.#state = "configured";
  }

  encode(frame: InputFrame): void {
    if (this.#state !== "configured" || this.#flushed) {
      throw new DOMException(
        `encode() while ${this.#flushed ? "flushed" : this.#state}`,
        "InvalidStateError",
      );
    }
    const problem = frameProblem(frame);
    if (problem) throw new TypeError(problem);
    const { width, height } = this.config;
    if (frame.width !== width || frame.height !== height) {
      throw new TypeError(
        `frame is ${frame.width}x${frame.height} but the encoder is configured for ${width}x${height}`,
      );
    }
    if (this.#format !== undefined && frame.format !== this.#format) {
      throw new TypeError(`frame is ${frame.format} but this segment's frames are ${this.#format}`);
    }
    if (frame.timestampUs <= this.#lastTimestamp) {
      throw new RangeError(
        `timestamp ${frame.timestampUs} µs is not after the previous ${this.#lastTimestamp} µs`,
      );
    }
    this.#format = frame.format;
    this.#lastTimestamp = frame.timestampUs;
    this.#waiting++;
    this.#queue.enqueue(() => {
      this.#waiting--;
      return this.feed(frame);
    });
  }

  flush(): Promise<void> {
    if (this.#state !== "configured" || this.#flushed) {
      const state = this.#flushed ? "flushed" : this.#state;
      return Promise.reject(new DOMException(`flush() while ${state}`, "InvalidStateError"));
    }
    this.#flushed = true;
    return this.#queue.enqueue(() => this.finish()).then(() => {
      if (this.#failure) throw this.#failure;
    });
  }

  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#waiting = 0;
    this.release();
  }

  /** Frames the backend took and has not output as chunks yet. */
  protected abstract get pending(): number;
  /** Takes one frame, in encode() order; a throw ends the encoder with that error. */
  protected abstract feed(frame: InputFrame): Promise<void>;
  /** Ends the segment: every chunk has gone through {@linkcode output} when it resolves. */
  protected abstract finish(): Promise<void>;
  /** Stops at once (close): kills processes or workers, drops pending frames. */
  protected abstract release(): void;

  /** The normalized settings (set before any step runs). */
  protected get config(): Required<EncoderConfig> {
    if (!this.#config) throw new DOMException("encoder is not configured", "InvalidStateError");
    return this.#config;
  }
  /** The segment's frame format (set before the first feed). */
  protected get format(): FrameFormat {
    if (!this.#format) throw new DOMException("no frame yet", "InvalidStateError");
    return this.#format;
  }
  protected get closed(): boolean {
    return this.#state === "closed";
  }

  /** Records the codec the backend actually opened. */
  protected useCodec(codec: EncoderCodec): void {
    this.#codecInUse = codec;
  }

  /** Reports a hardware (or unsupported) codec replaced by a software one. */
  protected reportFallback(info: EncoderFallback): void {
    this.#init.fallback?.(info);
  }

  /** Hands one access unit on as a chunk; the segment's first one carries the decoder configuration. */
  protected output(au: AccessUnit, timestamp: number): void {
    if (this.closed) return;
    const config = this.config;
    let metadata: ChunkMetadata | undefined;
    if (!this.#sentConfig) {
      const codec = this.#codecInUse ?? config.codec;
      metadata = { decoderConfig: decoderConfigFor(codec, au, config.width, config.height) };
      this.#sentConfig = true;
    }
    this.#init.output({
      type: au.key ? "key" : "delta",
      timestamp,
      duration: Math.round(1e6 / config.framerate),
      data: au.data,
      byteLength: au.data.byteLength,
    }, metadata);
  }

  #fail(e: Error): void {
    if (this.#state === "closed") return;
    this.#failure = e;
    this.close();
    this.#init.error(e);
  }
}
