/**
 * Encoder settings as pure functions: the codec list, defaults, validation, and the decoder configuration announced
 * with a segment's first chunk.
 * @module
 */

import { UsageError } from "../runtime/errors.ts";
import { type AccessUnit, codecString, parameterSets } from "../codec/annexb.ts";
import type { DecoderConfig, EncoderCodec, EncoderConfig } from "./types.ts";

/**
 * The `--codec` values: software x264/x265 or NVIDIA NVENC through ffmpeg.
 *
 * @example
 * ```ts
 * import { ENCODER_CODECS } from "./config.ts";
 * ENCODER_CODECS.includes("libx265"); // => true
 * ```
 */
export const ENCODER_CODECS = [
  "libx264",
  "libx265",
  "h264_nvenc",
  "hevc_nvenc",
] as const satisfies readonly EncoderCodec[];

/**
 * H.264/HEVC family of a codec name.
 *
 * @example
 * ```ts
 * import { codecFamily } from "./config.ts";
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
 * import { outputSize } from "./config.ts";
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
 * The preset `codec` runs with: the asked-for one when it is of that codec's kind, else the codec's default (an
 * NVENC `p1`…`p7` means nothing to x264/x265 after a fallback, nor an x264 name to NVENC).
 *
 * @example
 * ```ts
 * import { presetFor } from "./config.ts";
 * presetFor("libx264", "p4"); // "superfast"
 * ```
 */
export function presetFor(codec: EncoderCodec, preset: string): string {
  const nvencPreset = /^p[1-7]$/.test(preset);
  return nvencPreset === codec.endsWith("_nvenc") ? preset : defaultPreset(codec);
}

/**
 * The ffmpeg filter arguments that crop an odd size to {@linkcode outputSize} (one edge line lost), or none.
 *
 * @example
 * ```ts
 * import { cropArgs } from "./config.ts";
 * cropArgs(641, 481); // ["-vf", "crop=640:480:0:0"]
 * ```
 */
export function cropArgs(width: number, height: number): string[] {
  const out = outputSize(width, height);
  return out.width !== width || out.height !== height ? ["-vf", `crop=${out.width}:${out.height}:0:0`] : [];
}

/**
 * Checks and completes a config (defaults filled in); throws {@linkcode UsageError} naming the bad field.
 *
 * @example
 * ```ts
 * import { normalizeConfig } from "./config.ts";
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
 * import type { AccessUnit } from "../codec/annexb.ts";
 * import { decoderConfigFor } from "./config.ts";
 * declare const firstAccessUnit: AccessUnit;
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
