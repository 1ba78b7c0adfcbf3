/**
 * The system-ffmpeg backend of {@linkcode FrameEncoder}: one ffmpeg process per segment (encoder_line.ts keeps one
 * per sensor instead, on top of {@linkcode FfmpegProcess} and {@linkcode ffmpegArgs}), fed each frame on stdin as it
 * arrives (JPEG through the `image2pipe` demuxer, so JavaScript never touches pixels; BGR24 as `rawvideo`), writing an
 * H.264/HEVC Annex B stream on stdout that is split into access units and mapped, in order, to the input timestamps.
 *
 * Low flush latency comes from `-tune zerolatency`/`-bf 0` (no lookahead, no reordering): every picture but the last
 * has left ffmpeg by the time the segment ends, so `flush()` costs one frame's encode plus process exit.
 *
 * @example
 * ```ts
 * import { FfmpegEncoder } from "./ffmpeg_encoder.ts";
 * const enc = new FfmpegEncoder({ output: (c) => console.log(c.type, c.timestamp), error: console.error });
 * enc.configure({ codec: "libx264", width: 1280, height: 960, framerate: 10 });
 * enc.encode({ data: await Deno.readFile("0000.jpg"), format: "jpeg", width: 1280, height: 960, timestampUs: 0 });
 * await enc.flush();
 * enc.close();
 * ```
 * @module
 */

import { spawnChild } from "../runtime/children.ts";
import { FatalError, SegmentError } from "../runtime/errors.ts";
import { childEnv, spawnRefusal } from "../runtime/spawn_env.ts";
import { type AccessUnit, AccessUnitSplitter } from "../codec/annexb.ts";
import type { EncoderCodec, EncoderConfig, EncoderFallback, EncoderInit, EncoderOptions } from "./types.ts";
import { codecFamily, cropArgs, presetFor } from "./config.ts";
import type { FrameFormat, InputFrame } from "../codec/frame.ts";
import { EncoderFrontEnd } from "./front_end.ts";
import { readReused } from "../runtime/pipe_reader.ts";

/**
 * Hardware codecs that failed to open in this process, so later segments go straight to software and the node hears
 * about it once, not once per segment.
 */
const hardwareFailures = new Map<EncoderCodec, EncoderFallback>();

const SOFTWARE_FOR: Record<EncoderCodec, EncoderCodec> = {
  libx264: "libx264",
  libx265: "libx265",
  h264_nvenc: "libx264",
  hevc_nvenc: "libx265",
};

/**
 * The pixel format ffmpeg hands the encoder: 4:2:0 always, and for JPEG frames into x264/x265 in full range, as the
 * JPEGs are (cameras' and OpenCV's are full range; our RTSP node's too). Converting them to the usual limited range
 * is a pass of ffmpeg's scaler over every picture: 16% of the aggregator's ffmpeg CPU at 1280×960 (510 frames,
 * libx264 superfast: 6.26 s → 5.22 s, docs/design.md "Encode"). The stream says so (H.264/HEVC
 * `video_full_range_flag`), which ffmpeg, browsers and players read. NVENC and raw BGR input keep limited range.
 *
 * @example
 * ```ts
 * import { outputPixelFormat } from "./ffmpeg_encoder.ts";
 * outputPixelFormat("libx264", "jpeg"); // => "yuvj420p"
 * outputPixelFormat("h264_nvenc", "jpeg"); // => "yuv420p"
 * ```
 */
export function outputPixelFormat(codec: EncoderCodec, format: FrameFormat): "yuv420p" | "yuvj420p" {
  return format === "jpeg" && (codec === "libx264" || codec === "libx265") ? "yuvj420p" : "yuv420p";
}

/**
 * The ffmpeg arguments for one segment (exported so tests and benchmarks can run the same encode by hand).
 *
 * `keyEvery` is for a process kept across segments (encoder_line.ts): an IDR frame is forced on every `keyEvery`-th
 * frame, and JPEGs come as multipart JPEG (`mpjpeg`, see {@linkcode mpjpegHeader}), each with its length, so each
 * is decoded as soon as its bytes are in (image2pipe knows a JPEG has ended only when the next one starts).
 *
 * @example
 * ```ts
 * import { ffmpegArgs } from "./ffmpeg_encoder.ts";
 * const args = ffmpegArgs({ codec: "libx264", width: 1280, height: 960, framerate: 10, quality: 23,
 *   preset: "superfast", pixelFormat: "yuv420p" }, "libx264", "jpeg");
 * ```
 */
export function ffmpegArgs(
  config: Required<EncoderConfig>,
  codec: EncoderCodec,
  format: FrameFormat,
  keyEvery?: number,
): string[] {
  const rate = String(config.framerate);
  // Without a small probe, ffmpeg reads ~5 MB (dozens of JPEGs) before encoding anything, which delays the first
  // picture by seconds and piles the work up at the end of the segment.
  const probe = ["-probesize", "32", "-analyzeduration", "0"];
  const input = format === "jpeg"
    ? keyEvery === undefined
      ? [...probe, "-f", "image2pipe", "-c:v", "mjpeg", "-framerate", rate, "-i", "pipe:0"]
      : [...probe, "-f", "mpjpeg", "-c:v", "mjpeg", "-r", rate, "-i", "pipe:0"]
    : [
      "-f",
      "rawvideo",
      "-pix_fmt",
      "bgr24",
      "-s",
      `${config.width}x${config.height}`,
      "-framerate",
      rate,
      "-i",
      "pipe:0",
    ];
  const q = String(config.quality);
  const preset = presetFor(codec, config.preset);
  let codecArgs: string[];
  switch (codec) {
    case "libx264":
      codecArgs = [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        q,
        "-tune",
        "zerolatency",
      ];
      break;
    case "libx265":
      codecArgs = [
        "-c:v",
        "libx265",
        "-preset",
        preset,
        "-crf",
        q,
        "-tune",
        "zerolatency",
        "-x265-params",
        "bframes=0:log-level=error",
      ];
      break;
    case "h264_nvenc":
    case "hevc_nvenc":
      codecArgs = [
        "-c:v",
        codec,
        "-preset",
        preset,
        "-tune",
        "ll",
        "-rc",
        "vbr",
        "-cq",
        q,
        "-b:v",
        "0",
        "-zerolatency",
        "1",
      ];
      break;
  }
  return [
    "-hide_banner",
    "-nostdin",
    "-loglevel",
    "error",
    ...input,
    "-an",
    "-sn",
    ...cropArgs(config.width, config.height), // see outputSize(): odd sizes lose one edge line
    "-pix_fmt",
    outputPixelFormat(codec, format),
    // One picture out per picture in: the AU→timestamp mapping relies on it.
    "-fps_mode",
    "passthrough",
    ...codecArgs,
    // n counts the frames this process has encoded; forced-idr makes the forced key frame an IDR (a segment that
    // starts on it refers to nothing before it).
    ...(keyEvery === undefined
      ? []
      : ["-force_key_frames", `expr:eq(mod(n,${keyEvery}),0)`, "-forced-idr", "1"]),
    "-bf",
    "0",
    // A kept process (keyEvery) frames each picture behind its length (see MultipartReader): a raw stream's picture
    // is known to have ended only when the next one starts, which would hold a segment's last picture.
    "-f",
    keyEvery !== undefined ? "mpjpeg" : codecFamily(codec) === "hevc" ? "hevc" : "h264",
    "-flush_packets",
    "1",
    "pipe:1",
  ];
}

const textEncoder = new TextEncoder();

/**
 * Cuts a multipart stream (ffmpeg's `-f mpjpeg` muxer: each packet behind a header with its `Content-length`) into
 * its packets, whole, as soon as each one's last byte is in.
 *
 * @example
 * ```ts
 * import { MultipartReader } from "./ffmpeg_encoder.ts";
 * const r = new MultipartReader();
 * r.push(new TextEncoder().encode("--ffmpeg\r\nContent-length: 2\r\n\r\nhi\r\n")); // => [Uint8Array "hi"]
 * ```
 */
export class MultipartReader {
  #buf = new Uint8Array(0);
  /** Bytes of the packet being read, once its header was read; -1 while reading a header. */
  #need = -1;

  /** Adds bytes; returns the packets they completed (copies: `bytes` may be reused by the caller). */
  push(bytes: Uint8Array): Uint8Array[] {
    const merged = new Uint8Array(this.#buf.byteLength + bytes.byteLength);
    merged.set(this.#buf, 0);
    merged.set(bytes, this.#buf.byteLength);
    let b = merged;
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.#need < 0) {
        const end = headerEnd(b);
        if (end < 0) break;
        const header = new TextDecoder().decode(b.subarray(0, end));
        const m = /content-length:\s*(\d+)/i.exec(header);
        if (!m) {
          throw new Error(`ffmpeg's multipart output has a part without Content-length: ${header.trim()}`);
        }
        this.#need = Number(m[1]);
        b = b.subarray(end + 4);
      }
      if (b.byteLength < this.#need) break;
      out.push(b.slice(0, this.#need));
      b = b.subarray(this.#need);
      this.#need = -1;
    }
    this.#buf = b.slice();
    return out;
  }
}

/** Offset of the `\r\n\r\n` that ends a part's header (blank lines before the boundary skipped), or -1. */
function headerEnd(b: Uint8Array): number {
  let start = 0;
  while (start + 1 < b.byteLength && b[start] === 13 && b[start + 1] === 10) start += 2;
  for (let i = start; i + 3 < b.byteLength; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * The multipart header that goes before a JPEG of `byteLength` bytes on the stdin of an ffmpeg started with
 * `keyEvery` (see {@linkcode ffmpegArgs}): ffmpeg's mpjpeg demuxer then reads exactly that many bytes as one frame.
 *
 * @example
 * ```ts
 * import { mpjpegHeader } from "./ffmpeg_encoder.ts";
 * mpjpegHeader(1234); // "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 1234\r\n\r\n", as bytes
 * ```
 */
export function mpjpegHeader(byteLength: number): Uint8Array {
  return textEncoder.encode(`--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${byteLength}\r\n\r\n`);
}

/** How an ffmpeg process ended. */
export interface ExitInfo {
  success: boolean;
  code: number;
  stderr: string;
}

/** Starts ffmpeg with piped stdio, turning "not installed" and "not permitted" into one clear line. */
function spawn(path: string, args: string[]): Deno.ChildProcess {
  try {
    // Own process group, owned by the node: a signal to the node's group must not kill it before it flushes.
    return spawnChild(path, { args, stdin: "piped", stdout: "piped", stderr: "piped", ...childEnv() });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FatalError(
        `ffmpeg not found (${path}): install ffmpeg (apt install ffmpeg) or use --encoder wasm`,
      );
    }
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new FatalError(`${spawnRefusal(path, e)}; or use --encoder wasm`);
    }
    throw e;
  }
}

/**
 * One ffmpeg process: owns the child, its three pipes and the reader tasks; `kill()` reaps it.
 *
 * @example
 * ```ts
 * import { ffmpegArgs, FfmpegProcess } from "./ffmpeg_encoder.ts";
 * import { normalizeConfig } from "./config.ts";
 * const args = ffmpegArgs(normalizeConfig({ width: 640, height: 480, framerate: 10 }), "libx264", "jpeg");
 * const proc = new FfmpegProcess("ffmpeg", args, "libx264", (au) => console.log(au.key));
 * await proc.finish();
 * ```
 */
export class FfmpegProcess {
  readonly codec: EncoderCodec;
  /** Set when the first access unit arrived (the encoder opened). */
  producedOutput = false;
  readonly exited: Promise<ExitInfo>;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #stderr = "";
  #killed = false;

  constructor(
    path: string,
    args: string[],
    codec: EncoderCodec,
    onAccessUnit: (au: AccessUnit) => void,
    /** Output as multipart (`-f mpjpeg`), one picture a part: see {@linkcode ffmpegArgs}' `keyEvery`. */
    multipart = false,
  ) {
    this.codec = codec;
    const child = spawn(path, args);
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const splitter = new AccessUnitSplitter(codecFamily(codec));
    const parts = multipart ? new MultipartReader() : undefined;
    const stdoutDone = (async () => {
      try {
        for await (const bytes of readReused(child.stdout)) {
          // A part is one whole picture: the splitter's end() gives it out at once.
          const aus = parts
            ? parts.push(bytes).flatMap((p) => [...splitter.push(p), ...splitter.end()])
            : splitter.push(bytes);
          for (const au of aus) {
            this.producedOutput = true;
            onAccessUnit(au);
          }
        }
        for (const au of splitter.end()) {
          this.producedOutput = true;
          onAccessUnit(au);
        }
      } catch (e) {
        // A reader that stops while ffmpeg still writes would block ffmpeg forever: end the process with it.
        this.kill();
        throw e;
      }
    })();
    const stderrDone = (async () => {
      const dec = new TextDecoder();
      for await (const bytes of readReused(child.stderr)) {
        // Only the tail matters for the error message; cap it so a chatty ffmpeg cannot grow memory.
        this.#stderr = (this.#stderr + dec.decode(bytes, { stream: true })).slice(-4000);
      }
    })();
    this.exited = (async () => {
      const status = await child.status;
      // The readers end at EOF; an exception in one (output callback threw) must not leave ffmpeg's result unknown.
      const [out] = await Promise.allSettled([stdoutDone, stderrDone]);
      const stderr = this.#stderr.trim();
      if (out.status === "rejected") {
        const why = out.reason instanceof Error ? out.reason.message : String(out.reason);
        return { success: false, code: status.code, stderr: `output handling failed: ${why}` };
      }
      return { success: status.success && !this.#killed, code: status.code, stderr };
    })();
  }

  /** Writes one frame; rejects when ffmpeg has gone (the caller then looks at `exited`). */
  write(data: Uint8Array): Promise<void> {
    return this.#writer.write(data);
  }

  /** Closes stdin (ffmpeg then drains and exits) and waits for the exit. */
  async finish(): Promise<ExitInfo> {
    // A pipe that already broke means ffmpeg has exited: its exit status, awaited next, says why.
    await this.#writer.close().catch(() => {});
    return await this.exited;
  }

  /** Kills the process if it still runs; its status is still awaited by `exited`, so no zombie is left. */
  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#writer.abort().catch(() => {}); // being killed: a pipe error on the way out changes nothing
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
}

/**
 * ffmpeg's error in one line: the last non-empty line, which names the cause (e.g. `Cannot load libcuda.so.1`).
 *
 * @example
 * ```ts
 * import { stderrReason } from "./ffmpeg_encoder.ts";
 * stderrReason("x\npipe:0: Invalid data found when processing input\n"); // => "pipe:0: Invalid data found…"
 * ```
 */
export function stderrReason(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const cause = lines.find((l) => /libcuda|nvenc|cuda|capable device|OpenEncodeSession|driver/i.test(l));
  return cause ?? lines[lines.length - 1] ?? "no message";
}

/**
 * {@linkcode FrameEncoder} over a system ffmpeg subprocess; see the module comment.
 *
 * @example
 * ```ts
 * import { FfmpegEncoder } from "./ffmpeg_encoder.ts";
 * const enc = new FfmpegEncoder({ output: () => {}, error: console.error, fallback: (f) => console.warn(f.reason) });
 * enc.configure({ codec: "h264_nvenc", width: 640, height: 480, framerate: 10 });
 * ```
 */
export class FfmpegEncoder extends EncoderFrontEnd {
  readonly kind = "ffmpeg" as const;
  readonly #path: string;
  #proc: FfmpegProcess | undefined;
  /** Timestamps of frames sent to the current process and not yet returned as chunks, oldest first. */
  #timestamps: number[] = [];
  /** Frames kept for a replay while a hardware encoder has not proven it opened. */
  #retained: InputFrame[] | undefined;

  constructor(init: EncoderInit, options: EncoderOptions = {}) {
    super(init);
    this.#path = options.ffmpegPath ?? "ffmpeg";
  }

  protected get pending(): number {
    return this.#timestamps.length;
  }

  protected async feed(frame: InputFrame): Promise<void> {
    if (!this.#proc) this.#start();
    this.#timestamps.push(frame.timestampUs);
    this.#retained?.push(frame);
    const proc = this.#proc!;
    try {
      await proc.write(frame.data);
    } catch {
      // ffmpeg has gone: its exit status says why, and #recover acts on it.
      await this.#recover(proc);
    }
    if (proc === this.#proc && proc.producedOutput) this.#retained = undefined;
  }

  protected async finish(): Promise<void> {
    while (this.#proc) {
      const proc = this.#proc;
      const exit = await proc.finish();
      if (proc !== this.#proc) return; // closed meanwhile
      if (!exit.success) {
        await this.#recover(proc); // either replays into a software process (loop again) or throws
        continue;
      }
      this.#proc = undefined;
      this.#retained = undefined;
      if (this.#timestamps.length > 0) {
        const missing = this.#timestamps.length;
        this.#timestamps = [];
        throw new SegmentError(
          `ffmpeg returned ${missing} fewer pictures than frames (${exit.stderr || "no message"})`,
          "encoder_error",
        );
      }
    }
  }

  protected release(): void {
    this.#proc?.kill();
    this.#proc = undefined;
    this.#retained = undefined;
    this.#timestamps = [];
  }

  #start(): void {
    const config = this.config;
    const codec = hardwareFailures.has(config.codec) ? SOFTWARE_FOR[config.codec] : config.codec;
    this.useCodec(codec);
    this.#retained = codec.endsWith("_nvenc") ? [] : undefined;
    this.#proc = new FfmpegProcess(
      this.#path,
      ffmpegArgs(config, codec, this.format),
      codec,
      (au) => this.#emit(au),
    );
  }

  #emit(au: AccessUnit): void {
    if (this.closed) return;
    const timestamp = this.#timestamps.shift();
    if (timestamp === undefined) throw new Error("ffmpeg produced more pictures than frames it was given");
    this.output(au, timestamp);
  }

  /** The process died: fall back to software if a hardware encoder never opened, else report the failure. */
  async #recover(proc: FfmpegProcess): Promise<void> {
    proc.kill();
    const exit = await proc.exited;
    if (proc.codec.endsWith("_nvenc") && !proc.producedOutput && this.#retained) {
      const info: EncoderFallback = {
        requested: this.config.codec,
        used: SOFTWARE_FOR[proc.codec],
        reason: stderrReason(exit.stderr),
      };
      const first = !hardwareFailures.has(proc.codec);
      hardwareFailures.set(proc.codec, info);
      if (first) this.reportFallback(info);
      const replay = this.#retained;
      this.#proc = undefined;
      this.#timestamps = [];
      this.#start();
      for (const frame of replay) {
        this.#timestamps.push(frame.timestampUs);
        await this.#proc!.write(frame.data);
      }
      return;
    }
    throw new SegmentError(
      `ffmpeg (${proc.codec}) failed with exit code ${exit.code}: ${stderrReason(exit.stderr)}`,
      "encoder_error",
    );
  }
}
