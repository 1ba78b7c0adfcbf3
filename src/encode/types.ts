/**
 * The encoder interface, shaped like WebCodecs' `VideoEncoder`, so the aggregator and the muxer do not care which
 * backend runs: the system ffmpeg subprocess or ffmpeg.wasm in process. Type-only: backends import it, and only
 * `mod.ts` imports the backends, so nothing circles.
 *
 * Differences from WebCodecs, on purpose: frames are {@linkcode InputFrame}s (JPEG bytes or BGR24, never decoded in
 * JavaScript); chunks carry Annex B data (WebCodecs' `avc: { format: "annexb" }`).
 * @module
 */

import type { InputFrame } from "../codec/frame.ts";

/**
 * The `--codec` values: software x264/x265 or NVIDIA NVENC through ffmpeg (the list is `ENCODER_CODECS` in
 * `config.ts`).
 */
export type EncoderCodec = "libx264" | "libx265" | "h264_nvenc" | "hevc_nvenc";
/**
 * Which implementation runs the encoder.
 *
 * @example
 * ```ts
 * import type { EncoderKind } from "./types.ts";
 * const kind: EncoderKind = Deno.args.includes("--wasm") ? "wasm" : "ffmpeg";
 * ```
 */
export type EncoderKind = "ffmpeg" | "wasm";

/**
 * Encoder settings. Width and height are the frames' real size; odd sizes are cropped to even by the backend (see
 * {@linkcode outputSize}).
 *
 * @example
 * ```ts
 * import type { EncoderConfig } from "./types.ts";
 * const cfg: EncoderConfig = { codec: "libx265", width: 1280, height: 960, framerate: 10, quality: 28 };
 * ```
 */
export interface EncoderConfig {
  /** Default `libx264`. */
  codec?: EncoderCodec;
  width: number;
  height: number;
  /** Nominal frames per second: rate control and the last sample's duration (real timing comes from timestamps). */
  framerate: number;
  /** CRF for x264/x265, CQ for NVENC; lower is better. Default 23 (H.264) / 28 (HEVC), visually similar. */
  quality?: number;
  /** x264/x265 preset (`ultrafast`…`veryslow`) or NVENC preset (`p1`…`p7`); default {@linkcode defaultPreset}. */
  preset?: string;
  /** Only 4:2:0 is produced, the one every browser and QuickTime decode. */
  pixelFormat?: "yuv420p";
}

/**
 * The decoder configuration of a stream, as WebCodecs' `VideoDecoderConfig` (what the muxer needs).
 *
 * @example
 * ```ts
 * import type { DecoderConfig } from "./types.ts";
 * const cfg: DecoderConfig = { codec: "avc1.640020", codedWidth: 1280, codedHeight: 960 };
 * ```
 */
export interface DecoderConfig {
  /** RFC 6381 string from the SPS, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`. */
  codec: string;
  codedWidth: number;
  codedHeight: number;
  /** avcC/hvcC record; absent because chunks are Annex B with in-band parameter sets (the muxer derives it). */
  description?: Uint8Array;
}

/**
 * One encoded picture, like WebCodecs' `EncodedVideoChunk`.
 *
 * @example
 * ```ts
 * import type { EncodedChunk } from "./types.ts";
 * const isKey = (c: EncodedChunk) => c.type === "key";
 * ```
 */
export interface EncodedChunk {
  type: "key" | "delta";
  /** The input frame's `timestampUs`. */
  timestamp: number;
  /** Nominal 1e6/framerate µs; the muxer derives real durations from the next timestamp. */
  duration: number;
  /** Annex B access unit (4-byte start codes). */
  data: Uint8Array;
  byteLength: number;
}

/**
 * Sent with a chunk; `decoderConfig` comes with the segment's first chunk.
 *
 * @example
 * ```ts
 * import type { ChunkMetadata } from "./types.ts";
 * const startsSegment = (m?: ChunkMetadata) => m?.decoderConfig !== undefined;
 * ```
 */
export interface ChunkMetadata {
  decoderConfig?: DecoderConfig;
}

/**
 * Reported when the requested codec could not be opened and another one was used: by the ffmpeg backend once per
 * process and codec (later segments go straight to software), by the wasm backend once per encoder (segment).
 *
 * @example
 * ```ts
 * import type { EncoderFallback } from "./types.ts";
 * const warn = (f: EncoderFallback) => console.warn(`${f.requested} unavailable (${f.reason}), using ${f.used}`);
 * ```
 */
export interface EncoderFallback {
  requested: EncoderCodec;
  used: EncoderCodec;
  /** ffmpeg's own words, e.g. `Cannot load libcuda.so.1`. */
  reason: string;
}

/**
 * Callbacks, as WebCodecs' `VideoEncoderInit`, plus the fallback report.
 *
 * @example
 * ```ts
 * import type { EncoderInit } from "./types.ts";
 * const init: EncoderInit = { output: (chunk) => console.log(chunk.byteLength), error: (e) => console.error(e) };
 * ```
 */
export interface EncoderInit {
  output(chunk: EncodedChunk, metadata?: ChunkMetadata): void;
  /** A fault after which the encoder is closed (`flush()` also rejects with it). */
  error(e: Error): void;
  /** Called when a hardware codec fell back to software; the node logs it (once, since the choice is cached). */
  fallback?(info: EncoderFallback): void;
}

/**
 * State names as in WebCodecs.
 *
 * @example
 * ```ts
 * import type { EncoderState } from "./types.ts";
 * const usable = (s: EncoderState) => s === "configured";
 * ```
 */
export type EncoderState = "unconfigured" | "configured" | "closed";

/**
 * What every backend implements. One encoder makes one segment: configure, encode its frames, flush, close.
 *
 * @example
 * ```ts
 * import type { FrameEncoder } from "./types.ts";
 * async function finish(enc: FrameEncoder) {
 *   await enc.flush(); // every chunk of the segment has been passed to output() when this resolves
 * }
 * ```
 */
export interface FrameEncoder {
  readonly kind: EncoderKind;
  readonly state: EncoderState;
  /** Frames accepted but not yet emitted as chunks. */
  readonly encodeQueueSize: number;
  /** The codec actually used by the current/last segment (differs from the config after a fallback). */
  readonly codecInUse: EncoderCodec | undefined;
  /** Validates and stores the settings, once; throws {@linkcode UsageError} for bad ones. */
  configure(config: EncoderConfig): void;
  /**
   * Queues a frame of the segment: the configured size, the first frame's format, timestamps increasing (throws
   * otherwise). The segment's first frame is always a key frame.
   */
  encode(frame: InputFrame): void;
  /** Ends the segment, once: resolves when every chunk was output, rejects on an encoder failure. */
  flush(): Promise<void>;
  /** Stops at once: kills subprocesses/workers and drops pending frames. Idempotent. */
  close(): void;
}

/**
 * Options that only some backends use.
 *
 * @example
 * ```ts
 * import type { EncoderOptions } from "./types.ts";
 * const opts: EncoderOptions = { ffmpegPath: "/usr/bin/ffmpeg" };
 * ```
 */
export interface EncoderOptions {
  /** ffmpeg executable for the `ffmpeg` backend (default `ffmpeg` on PATH). */
  ffmpegPath?: string;
}
