/**
 * Makes an encoder: the only module that imports both backends (the system ffmpeg subprocess and ffmpeg.wasm).
 * @module
 */

import { UsageError } from "../runtime/errors.ts";
import { type EncoderLine, LineEncoder } from "./encoder_line.ts";
import { FfmpegEncoder } from "./ffmpeg_encoder.ts";
import type { EncoderInit, EncoderKind, EncoderOptions, FrameEncoder } from "./types.ts";
import { WasmEncoder } from "./wasm_encoder.ts";

/**
 * Makes an encoder of the chosen backend; with `line` (ffmpeg backend only), one that borrows the line's kept
 * process (see encoder_line.ts).
 *
 * @example
 * ```ts
 * import { createEncoder, detectEncoderKind } from "./mod.ts";
 * const enc = createEncoder(await detectEncoderKind(), { output: console.log, error: console.error });
 * ```
 */
export function createEncoder(
  kind: EncoderKind,
  init: EncoderInit,
  options: EncoderOptions = {},
  line?: EncoderLine,
): FrameEncoder {
  if (kind === "ffmpeg") return line ? new LineEncoder(init, line) : new FfmpegEncoder(init, options);
  if (kind === "wasm") return new WasmEncoder(init);
  throw new UsageError(`unknown encoder backend ${String(kind)}: expected ffmpeg or wasm`);
}

/**
 * `ffmpeg` when this process may start `ffmpeg` subprocesses, else `wasm` (the sandboxed fallback).
 * Does not prompt; does not check that ffmpeg is installed (the ffmpeg backend reports that clearly).
 *
 * @example
 * ```ts
 * import { detectEncoderKind } from "./mod.ts";
 * console.log(await detectEncoderKind()); // "wasm" under `deno run` without --allow-run
 * ```
 */
export async function detectEncoderKind(ffmpegPath = "ffmpeg"): Promise<EncoderKind> {
  const status = await Deno.permissions.query({ name: "run", command: ffmpegPath });
  return status.state === "granted" ? "ffmpeg" : "wasm";
}
