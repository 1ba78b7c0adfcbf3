/**
 * A video encoder interface shaped like WebCodecs' `VideoEncoder`, so the aggregator and the muxer do not care which
 * backend ran: the system ffmpeg subprocess ({@linkcode FfmpegEncoder}) or ffmpeg.wasm in process
 * ({@linkcode WasmEncoder}).
 *
 * Differences from WebCodecs, on purpose: frames are {@linkcode InputFrame}s (JPEG bytes or BGR24, never decoded in
 * JavaScript); `encode()` accepts more frames after `flush()`, and each flush ends one segment, so the next frame
 * starts a new stream with a key frame; chunks carry Annex B data (WebCodecs' `avc: { format: "annexb" }`).
 *
 * @example
 * ```ts
 * import { createEncoder } from "./encoder.ts";
 * const chunks: EncodedChunk[] = [];
 * const enc = createEncoder("ffmpeg", { output: (c) => chunks.push(c), error: (e) => console.error(e) });
 * enc.configure({ codec: "libx264", width: 1280, height: 960, framerate: 10 });
 * enc.encode({ data: jpeg, format: "jpeg", width: 1280, height: 960, timestampUs: 0 });
 * await enc.flush();
 * enc.close();
 * ```
 * @module
 */

import { UsageError } from "../runtime/errors.ts";
import { type AccessUnit, codecString, parameterSets } from "./annexb.ts";
import type { InputFrame } from "./frame.ts";
import { FfmpegEncoder } from "./ffmpeg_encoder.ts";
import { WasmEncoder } from "./wasm_encoder.ts";

/**
 * The `--codec` values: software x264/x265 or NVIDIA NVENC through ffmpeg.
 *
 * @example
 * ```ts
 * import { ENCODER_CODECS } from "./encoder.ts";
 * ENCODER_CODECS.includes("libx265"); // => true
 * ```
 */
export const ENCODER_CODECS = ["libx264", "libx265", "h264_nvenc", "hevc_nvenc"] as const;
/**
 * One of {@linkcode ENCODER_CODECS}.
 *
 * @example
 * ```ts
 * import type { EncoderCodec } from "./encoder.ts";
 * const codec: EncoderCodec = "hevc_nvenc";
 * ```
 */
export type EncoderCodec = typeof ENCODER_CODECS[number];
/**
 * Which implementation runs the encoder.
 *
 * @example
 * ```ts
 * import type { EncoderKind } from "./encoder.ts";
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
 * import type { EncoderConfig } from "./encoder.ts";
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
 * import type { DecoderConfig } from "./encoder.ts";
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
 * import type { EncodedChunk } from "./encoder.ts";
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
 * Sent with a chunk; `decoderConfig` comes with the first chunk of every segment (the stream restarts there).
 *
 * @example
 * ```ts
 * import type { ChunkMetadata } from "./encoder.ts";
 * const startsSegment = (m?: ChunkMetadata) => m?.decoderConfig !== undefined;
 * ```
 */
export interface ChunkMetadata {
  decoderConfig?: DecoderConfig;
}

/**
 * Reported when the requested codec could not be opened and another one was used: by the ffmpeg backend once per
 * process and codec (later segments go straight to software), by the wasm backend once per encoder.
 *
 * @example
 * ```ts
 * import type { EncoderFallback } from "./encoder.ts";
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
 * import type { EncoderInit } from "./encoder.ts";
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
 * import type { EncoderState } from "./encoder.ts";
 * const usable = (s: EncoderState) => s === "configured";
 * ```
 */
export type EncoderState = "unconfigured" | "configured" | "closed";

/**
 * What every backend implements.
 *
 * @example
 * ```ts
 * import type { FrameEncoder } from "./encoder.ts";
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
  /** Validates and stores the settings; throws {@linkcode UsageError} for bad ones. Ends any open segment. */
  configure(config: EncoderConfig): void;
  /** Queues a frame; timestamps must increase. `keyFrame` is honoured only on a segment's first frame (always key). */
  encode(frame: InputFrame, options?: { keyFrame?: boolean }): void;
  /** Ends the segment: resolves when every chunk was output, rejects on an encoder failure. */
  flush(): Promise<void>;
  /** Stops at once: kills subprocesses/workers and drops pending frames. Idempotent. */
  close(): void;
}

/**
 * Options that only some backends use.
 *
 * @example
 * ```ts
 * import type { EncoderOptions } from "./encoder.ts";
 * const opts: EncoderOptions = { ffmpegPath: "/usr/bin/ffmpeg" };
 * ```
 */
export interface EncoderOptions {
  /** ffmpeg executable for the `ffmpeg` backend (default `ffmpeg` on PATH). */
  ffmpegPath?: string;
}

/**
 * Makes an encoder of the chosen backend.
 *
 * @example
 * ```ts
 * import { createEncoder, detectEncoderKind } from "./encoder.ts";
 * const enc = createEncoder(await detectEncoderKind(), { output: console.log, error: console.error });
 * ```
 */
export function createEncoder(
  kind: EncoderKind,
  init: EncoderInit,
  options: EncoderOptions = {},
): FrameEncoder {
  if (kind === "ffmpeg") return new FfmpegEncoder(init, options);
  if (kind === "wasm") return new WasmEncoder(init);
  throw new UsageError(`unknown encoder backend ${String(kind)}: expected ffmpeg or wasm`);
}

/**
 * `ffmpeg` when this process may start `ffmpeg` subprocesses, else `wasm` (the sandboxed fallback).
 * Does not prompt; does not check that ffmpeg is installed (the ffmpeg backend reports that clearly).
 *
 * @example
 * ```ts
 * import { detectEncoderKind } from "./encoder.ts";
 * console.log(await detectEncoderKind()); // "wasm" under `deno run` without --allow-run
 * ```
 */
export async function detectEncoderKind(ffmpegPath = "ffmpeg"): Promise<EncoderKind> {
  const status = await Deno.permissions.query({ name: "run", command: ffmpegPath });
  return status.state === "granted" ? "ffmpeg" : "wasm";
}

/**
 * H.264/HEVC family of a codec name.
 *
 * @example
 * ```ts
 * import { codecFamily } from "./encoder.ts";
 * codecFamily("hevc_nvenc"); // => "hevc"
 * ```
 */
export function codecFamily(codec: EncoderCodec): "avc" | "hevc" {
  return codec === "libx265" || codec === "hevc_nvenc" ? "hevc" : "avc";
}

/**
 * The size of the encoded picture for an input size. 4:2:0 chroma covers 2×2 luma samples, and H.264/HEVC crop in
 * units of 2, so an odd size cannot be coded: we crop one pixel off the right column/bottom row (641×481 → 640×480),
 * which loses at most one line of real pixels. Padding instead would add a fake edge line and make players rescale;
 * MSight's upscaling to multiples of 16 distorts the picture.
 *
 * @example
 * ```ts
 * import { outputSize } from "./encoder.ts";
 * outputSize(641, 481); // => { width: 640, height: 480 }
 * ```
 */
export function outputSize(width: number, height: number): { width: number; height: number } {
  return { width: width - (width % 2), height: height - (height % 2) };
}

/**
 * The preset a codec gets unless one is asked for, and the one a software encoder falls back to from an NVENC preset.
 *
 * x264: `superfast`. An edge box is short of CPU, not of disk: on the real camera frames at 1280×720 and 10 fps,
 * four encoders side by side took 29% of a core each at `veryfast` and 21% at `superfast`, for files 6% larger and
 * the same SSIM against the source JPEGs (0.991). x265: `veryfast` (`superfast` lost SSIM there: 0.975 → 0.972).
 * NVENC: `p4`, its balanced middle.
 *
 * @example
 * ```ts
 * defaultPreset("libx264"); // "superfast"
 * ```
 */
export function defaultPreset(codec: EncoderCodec): string {
  if (codec.endsWith("_nvenc")) return "p4";
  return codec === "libx265" ? "veryfast" : "superfast";
}

/**
 * Checks and completes a config (defaults filled in); throws {@linkcode UsageError} naming the bad field.
 *
 * @example
 * ```ts
 * import { normalizeConfig } from "./encoder.ts";
 * normalizeConfig({ width: 1280, height: 960, framerate: 10 }).preset; // => "superfast"
 * ```
 */
export function normalizeConfig(config: EncoderConfig): Required<EncoderConfig> {
  const codec = config.codec ?? "libx264";
  if (!(ENCODER_CODECS as readonly string[]).includes(codec)) {
    throw new UsageError(`unknown codec ${codec}: expected one of ${ENCODER_CODECS.join(", ")}`);
  }
  for (const [name, v] of [["width", config.width], ["height", config.height]] as const) {
    if (!Number.isInteger(v) || v < 2 || v > 16384) {
      throw new UsageError(`encoder ${name} ${v} is invalid: expected an integer 2..16384`);
    }
  }
  if (!(config.framerate > 0) || !Number.isFinite(config.framerate)) {
    throw new UsageError(`encoder framerate ${config.framerate} is invalid: expected a number > 0`);
  }
  const quality = config.quality ?? (codecFamily(codec) === "hevc" ? 28 : 23);
  if (!(quality >= 0 && quality <= 51)) throw new UsageError(`quality ${quality} is invalid: expected 0..51`);
  const preset = config.preset ?? defaultPreset(codec);
  if (!/^[a-z0-9]+$/.test(preset)) throw new UsageError(`preset ${preset} is invalid`);
  if ((config.pixelFormat ?? "yuv420p") !== "yuv420p") {
    throw new UsageError(`pixel format ${config.pixelFormat} is not supported: only yuv420p`);
  }
  return {
    codec,
    width: config.width,
    height: config.height,
    framerate: config.framerate,
    quality,
    preset,
    pixelFormat: "yuv420p",
  };
}

/**
 * The decoder configuration announced with a segment's first chunk: codec string from the SPS, size after cropping.
 * Throws when the first access unit is not a key frame with its SPS (the stream could not be decoded from it).
 *
 * @example
 * ```ts
 * import { decoderConfigFor } from "./encoder.ts";
 * const cfg = decoderConfigFor("libx264", firstAccessUnit, 641, 481); // { codec: "avc1.64001e", codedWidth: 640, ... }
 * ```
 */
export function decoderConfigFor(
  codec: EncoderCodec,
  au: AccessUnit,
  width: number,
  height: number,
): DecoderConfig {
  const family = codecFamily(codec);
  const { sps } = parameterSets(family, au.nals);
  if (!sps || !au.key) throw new Error("the encoded stream does not start with a key frame carrying its SPS");
  const size = outputSize(width, height);
  return { codec: codecString(family, sps), codedWidth: size.width, codedHeight: size.height };
}
