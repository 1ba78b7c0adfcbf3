/**
 * The ffmpeg.wasm backend of {@linkcode FrameEncoder}: the same interface, in process, needing only
 * `--allow-read` (to load the wasm core), so the aggregator can run without `--allow-run`. The whole segment
 * is encoded at `flush()` (ffmpeg.wasm cannot read a pipe); libx264 only (other codecs fall back to it,
 * reported through `init.fallback`); the core is found by {@linkcode locateFfmpegWasm}. Its memory and
 * latency trade-offs: docs/design.md, "Encode".
 *
 * @example
 * ```ts
 * import { WasmEncoder } from "./wasm_encoder.ts";
 * const enc = new WasmEncoder({ output: (c) => console.log(c.timestamp), error: console.error });
 * enc.configure({ width: 1280, height: 960, framerate: 10, preset: "ultrafast" });
 * enc.encode({ data: await Deno.readFile("0000.jpg"), format: "jpeg", width: 1280, height: 960, timestampUs: 0 });
 * await enc.flush();
 * enc.close();
 * ```
 * @module
 */

import type { FFmpeg } from "@ffmpeg/ffmpeg";
import { FatalError, SegmentError } from "../runtime/errors.ts";
import { AccessUnitSplitter } from "../codec/annexb.ts";
import type { EncoderCodec } from "./types.ts";
import { cropArgs, presetFor } from "./config.ts";
import type { InputFrame } from "../codec/frame.ts";
import { EncoderFrontEnd } from "./front_end.ts";

/**
 * File URLs of the ffmpeg.wasm pieces.
 *
 * @example
 * ```ts
 * import { type FfmpegWasmLocation, locateFfmpegWasm } from "./wasm_encoder.ts";
 * const loc: FfmpegWasmLocation = locateFfmpegWasm();
 * ```
 */
export interface FfmpegWasmLocation {
  /** `@ffmpeg/ffmpeg/dist/esm/index.js` (the class that runs the core in a worker). */
  ffmpegModule: string;
  /** `@ffmpeg/core/dist/esm/ffmpeg-core.js`. */
  coreURL: string;
  /** `@ffmpeg/core/dist/esm/ffmpeg-core.wasm`. */
  wasmURL: string;
}

/**
 * Finds ffmpeg.wasm's files: through the import map first, then by scanning `node_modules/.deno` in the working
 * directory. Throws {@linkcode FatalError} naming what to install when neither works.
 *
 * @example
 * ```ts
 * import { locateFfmpegWasm } from "./wasm_encoder.ts";
 * const { coreURL } = locateFfmpegWasm(); // file:///…/@ffmpeg/core/dist/esm/ffmpeg-core.js
 * ```
 */
export function locateFfmpegWasm(): FfmpegWasmLocation {
  try {
    const ffmpegEntry = import.meta.resolve("@ffmpeg/ffmpeg");
    const loc = {
      // Under Deno the package's `node` condition yields an empty stub; the browser build sits beside it.
      ffmpegModule: new URL("./index.js", ffmpegEntry).href,
      coreURL: import.meta.resolve("@ffmpeg/core"),
      wasmURL: import.meta.resolve("@ffmpeg/core/wasm"),
    };
    if (Object.values(loc).every((u) => u.startsWith("file:"))) return loc;
  } catch {
    // Not in the import map (module used from another project): try the scan.
  }
  const found = scanNodeModules(`${Deno.cwd()}/node_modules/.deno`);
  if (found) return found;
  throw new FatalError(
    "ffmpeg.wasm not found: add @ffmpeg/ffmpeg and @ffmpeg/core to the import map and run `deno install`",
  );
}

function scanNodeModules(dir: string): FfmpegWasmLocation | undefined {
  let ffmpegDir: string | undefined;
  let coreDir: string | undefined;
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.name.startsWith("@ffmpeg+ffmpeg@")) ffmpegDir = `${dir}/${e.name}/node_modules/@ffmpeg/ffmpeg`;
      if (e.name.startsWith("@ffmpeg+core@")) coreDir = `${dir}/${e.name}/node_modules/@ffmpeg/core`;
    }
  } catch {
    // No such node_modules folder: not found, and the caller stops with one line saying so.
    return undefined;
  }
  if (!ffmpegDir || !coreDir) return undefined;
  const url = (p: string) => new URL(`file://${p}`).href;
  return {
    ffmpegModule: url(`${ffmpegDir}/dist/esm/index.js`),
    coreURL: url(`${coreDir}/dist/esm/ffmpeg-core.js`),
    wasmURL: url(`${coreDir}/dist/esm/ffmpeg-core.wasm`),
  };
}

/** Loads a fresh ffmpeg.wasm instance (its own worker). */
async function loadFfmpeg(): Promise<FFmpeg> {
  const loc = locateFfmpegWasm();
  const mod = await import(loc.ffmpegModule) as { FFmpeg: new () => FFmpeg };
  const ffmpeg = new mod.FFmpeg();
  await ffmpeg.load({ coreURL: loc.coreURL, wasmURL: loc.wasmURL });
  return ffmpeg;
}

/**
 * {@linkcode FrameEncoder} over ffmpeg.wasm; see the module comment for the memory and latency trade-off.
 *
 * @example
 * ```ts
 * import { WasmEncoder } from "./wasm_encoder.ts";
 * const enc = new WasmEncoder({ output: () => {}, error: console.error });
 * ```
 */
export class WasmEncoder extends EncoderFrontEnd {
  readonly kind = "wasm" as const;
  #ffmpeg: Promise<FFmpeg> | undefined;
  /** The segment's frames in the wasm file system, with their timestamps, in order. */
  #files: { name: string; timestampUs: number }[] = [];

  protected get pending(): number {
    return this.#files.length;
  }

  protected async feed(frame: InputFrame): Promise<void> {
    this.#ffmpeg ??= loadFfmpeg();
    const ffmpeg = await this.#ffmpeg;
    const name = `f${String(this.#files.length).padStart(6, "0")}.${frame.format === "jpeg" ? "jpg" : "bgr"}`;
    // ffmpeg.wasm transfers the buffer to its worker; a copy keeps the caller's bytes (overlap frames) intact.
    await ffmpeg.writeFile(name, frame.data.slice());
    this.#files.push({ name, timestampUs: frame.timestampUs });
  }

  protected release(): void {
    const ffmpeg = this.#ffmpeg;
    this.#ffmpeg = undefined;
    this.#files = [];
    // terminate() ends the worker and rejects its pending calls, which the chain ignores once closed.
    ffmpeg?.then((f) => f.terminate(), () => {});
  }

  #codecFor(requested: EncoderCodec): EncoderCodec {
    if (requested === "libx264") return requested;
    this.reportFallback({
      requested,
      used: "libx264",
      reason: requested === "libx265"
        ? "libx265 does not run in ffmpeg.wasm's single-thread core"
        : "NVENC is not available in ffmpeg.wasm",
    });
    return "libx264";
  }

  protected async finish(): Promise<void> {
    const files = this.#files;
    if (files.length === 0) return;
    this.#files = [];
    const config = this.config;
    const codec = this.#codecFor(config.codec);
    this.useCodec(codec);
    const ffmpeg = await this.#ffmpeg!;
    const out = "out.h264";
    const ext = this.format === "jpeg" ? "jpg" : "bgr";
    const input = this.format === "jpeg"
      ? ["-f", "image2", "-c:v", "mjpeg"]
      : ["-f", "image2", "-c:v", "rawvideo", "-pix_fmt", "bgr24", "-s", `${config.width}x${config.height}`];
    const lines: string[] = [];
    const onLog = ({ message }: { message: string }) => {
      lines.push(message);
      if (lines.length > 20) lines.shift();
    };
    ffmpeg.on("log", onLog);
    let rc: number;
    try {
      rc = await ffmpeg.exec([
        "-hide_banner",
        "-loglevel",
        "error",
        ...input,
        "-framerate",
        String(config.framerate),
        "-i",
        `f%06d.${ext}`,
        ...cropArgs(config.width, config.height),
        "-pix_fmt",
        "yuv420p",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        presetFor("libx264", config.preset),
        "-crf",
        String(config.quality),
        // No lookahead/mb-tree: about twice as fast single-threaded, for a few percent of bitrate.
        "-tune",
        "zerolatency",
        "-bf",
        "0",
        "-f",
        "h264",
        out,
      ]);
    } finally {
      ffmpeg.off("log", onLog);
    }
    // No file clean-up: the encoder makes one segment, and close() ends the worker with its whole heap.
    if (rc !== 0) {
      const why = lines.filter((l) => l !== "Aborted()").pop() ?? "no message";
      throw new SegmentError(`ffmpeg.wasm failed with exit code ${rc}: ${why}`, "encoder_error");
    }
    const stream = await ffmpeg.readFile(out);
    if (!(stream instanceof Uint8Array)) throw new Error("ffmpeg.wasm returned text for a binary file");
    const split = new AccessUnitSplitter("avc");
    const units = [...split.push(stream), ...split.end()];
    if (units.length !== files.length) {
      throw new SegmentError(
        `ffmpeg.wasm returned ${units.length} pictures for ${files.length} frames`,
        "encoder_error",
      );
    }
    units.forEach((au, i) => this.output(au, files[i].timestampUs));
  }
}
