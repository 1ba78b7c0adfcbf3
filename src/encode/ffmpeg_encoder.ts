/**
 * The system-ffmpeg backend of {@linkcode FrameEncoder}: one ffmpeg process per segment, fed each frame on stdin as it
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
import { FatalError } from "../runtime/errors.ts";
import { type AccessUnit, AccessUnitSplitter } from "../codec/annexb.ts";
import type {
  ChunkMetadata,
  EncoderCodec,
  EncoderConfig,
  EncoderFallback,
  EncoderInit,
  EncoderOptions,
  EncoderState,
  FrameEncoder,
} from "./types.ts";
import { codecFamily, decoderConfigFor, defaultPreset, normalizeConfig, outputSize } from "./config.ts";
import { type FrameFormat, frameProblem, type InputFrame } from "../codec/frame.ts";
import { SerialQueue } from "./serial_queue.ts";
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
 * The ffmpeg arguments for one segment (exported so tests and benchmarks can run the same encode by hand).
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
): string[] {
  const rate = String(config.framerate);
  // Without a small probe, ffmpeg reads ~5 MB (dozens of JPEGs) before encoding anything, which delays the first
  // picture by seconds and piles the work up at the end of the segment.
  const probe = ["-probesize", "32", "-analyzeduration", "0"];
  const input = format === "jpeg"
    ? [...probe, "-f", "image2pipe", "-c:v", "mjpeg", "-framerate", rate, "-i", "pipe:0"]
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
  const out = outputSize(config.width, config.height);
  const filters = out.width !== config.width || out.height !== config.height
    ? ["-vf", `crop=${out.width}:${out.height}:0:0`] // see outputSize(): odd sizes lose one edge line
    : [];
  const q = String(config.quality);
  const hwPreset = /^p[1-7]$/.test(config.preset);
  let codecArgs: string[];
  switch (codec) {
    case "libx264":
      codecArgs = [
        "-c:v",
        "libx264",
        "-preset",
        hwPreset ? defaultPreset("libx264") : config.preset,
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
        hwPreset ? defaultPreset("libx265") : config.preset,
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
        hwPreset ? config.preset : "p4",
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
    ...filters,
    "-pix_fmt",
    "yuv420p",
    // One picture out per picture in: the AU→timestamp mapping relies on it.
    "-fps_mode",
    "passthrough",
    ...codecArgs,
    "-bf",
    "0",
    "-f",
    codecFamily(codec) === "hevc" ? "hevc" : "h264",
    "-flush_packets",
    "1",
    "pipe:1",
  ];
}

interface ExitInfo {
  success: boolean;
  code: number;
  stderr: string;
}

/** Starts ffmpeg with piped stdio, turning "not installed" and "not permitted" into one clear line. */
function spawn(path: string, args: string[]): Deno.ChildProcess {
  try {
    // Own process group, owned by the node: a signal to the node's group must not kill it before it flushes.
    return spawnChild(path, { args, stdin: "piped", stdout: "piped", stderr: "piped" });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FatalError(
        `ffmpeg not found (${path}): install ffmpeg (apt install ffmpeg) or use --encoder wasm`,
      );
    }
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new FatalError(`not allowed to run ${path} (needs --allow-run): use --encoder wasm`);
    }
    throw e;
  }
}

/** One ffmpeg process: owns the child, its three pipes and the reader tasks; `kill()` reaps it. */
class FfmpegProcess {
  readonly codec: EncoderCodec;
  readonly format: FrameFormat;
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
    format: FrameFormat,
    onAccessUnit: (au: AccessUnit) => void,
  ) {
    this.codec = codec;
    this.format = format;
    const child = spawn(path, args);
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const splitter = new AccessUnitSplitter(codecFamily(codec));
    const stdoutDone = (async () => {
      try {
        for await (const bytes of readReused(child.stdout)) {
          for (const au of splitter.push(bytes)) {
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
    await this.#writer.close().catch(() => {});
    return await this.exited;
  }

  /** Kills the process if it still runs; its status is still awaited by `exited`, so no zombie is left. */
  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#writer.abort().catch(() => {});
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
}

/** ffmpeg's error in one line: the last non-empty line, which names the cause (e.g. `Cannot load libcuda.so.1`). */
function stderrReason(stderr: string): string {
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
export class FfmpegEncoder implements FrameEncoder {
  readonly kind = "ffmpeg" as const;
  #init: EncoderInit;
  #path: string;
  #state: EncoderState = "unconfigured";
  #config: Required<EncoderConfig> | undefined;
  #proc: FfmpegProcess | undefined;
  /** Timestamps of frames sent to the current process and not yet returned as chunks, oldest first. */
  #timestamps: number[] = [];
  /** Frames of the current segment kept for a replay while a hardware encoder has not proven it opened. */
  #retained: InputFrame[] | undefined;
  #lastTimestamp = -Infinity;
  #segmentFormat: FrameFormat | undefined;
  #sentConfig = false;
  #codecInUse: EncoderCodec | undefined;
  /** Serializes writes, recoveries and flushes, so frames reach ffmpeg in order. */
  readonly #queue = new SerialQueue(() => this.#state === "closed", (e) => this.#fail(e));
  #failure: Error | undefined;
  /** Frames accepted by encode() that have not reached ffmpeg's stdin yet (ffmpeg slower than the camera). */
  #waiting = 0;

  constructor(init: EncoderInit, options: EncoderOptions = {}) {
    this.#init = init;
    this.#path = options.ffmpegPath ?? "ffmpeg";
  }

  get state(): EncoderState {
    return this.#state;
  }
  get encodeQueueSize(): number {
    return this.#waiting + this.#timestamps.length;
  }
  get codecInUse(): EncoderCodec | undefined {
    return this.#codecInUse;
  }

  configure(config: EncoderConfig): void {
    if (this.#state === "closed") throw new DOMException("encoder is closed", "InvalidStateError");
    const next = normalizeConfig(config);
    // A new configuration ends the segment (as WebCodecs' configure() ends the stream), without losing it.
    if (this.#proc) this.#queue.enqueue(() => this.#finishSegment());
    this.#queue.enqueue(() => {
      this.#config = next;
      return Promise.resolve();
    });
    this.#config ??= next;
    this.#state = "configured";
  }

  encode(frame: InputFrame, _options?: { keyFrame?: boolean }): void {
    if (this.#state !== "configured" || !this.#config) {
      throw new DOMException(`encode() while ${this.#state}`, "InvalidStateError");
    }
    const problem = frameProblem(frame);
    if (problem) throw new TypeError(problem);
    if (frame.timestampUs <= this.#lastTimestamp) {
      throw new RangeError(
        `timestamp ${frame.timestampUs} µs is not after the previous ${this.#lastTimestamp} µs`,
      );
    }
    this.#lastTimestamp = frame.timestampUs;
    // Size and format are checked when the frame reaches the process (configure() may be queued before it).
    this.#waiting++;
    this.#queue.enqueue(() => {
      this.#waiting--;
      return this.#feed(frame);
    });
  }

  flush(): Promise<void> {
    if (this.#state !== "configured") {
      return Promise.reject(new DOMException(`flush() while ${this.#state}`, "InvalidStateError"));
    }
    // Timestamps restart per segment: the overlap frames of the next segment are older than this one's last.
    this.#lastTimestamp = -Infinity;
    const done = this.#queue.enqueue(() => this.#finishSegment());
    return done.then(() => {
      if (this.#failure) throw this.#failure;
    });
  }

  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#proc?.kill();
    this.#proc = undefined;
    this.#retained = undefined;
    this.#timestamps = [];
    this.#waiting = 0;
  }

  #fail(e: Error): void {
    if (this.#state === "closed") return;
    this.#failure = e;
    this.close();
    this.#init.error(e);
  }

  async #feed(frame: InputFrame): Promise<void> {
    const config = this.#config!;
    if (frame.width !== config.width || frame.height !== config.height) {
      throw new Error(
        `frame is ${frame.width}x${frame.height} but the encoder is configured for ${config.width}x${config.height}`,
      );
    }
    if (this.#proc && this.#segmentFormat !== frame.format) await this.#finishSegment();
    if (!this.#proc) this.#start(frame.format);
    this.#timestamps.push(frame.timestampUs);
    this.#retained?.push(frame);
    const proc = this.#proc!;
    try {
      await proc.write(frame.data);
    } catch {
      await this.#recover(proc);
    }
    if (proc === this.#proc && proc.producedOutput) this.#retained = undefined;
  }

  #start(format: FrameFormat): void {
    const config = this.#config!;
    const codec = hardwareFailures.has(config.codec) ? SOFTWARE_FOR[config.codec] : config.codec;
    this.#segmentFormat = format;
    this.#sentConfig = false;
    this.#codecInUse = codec;
    this.#retained = codec.endsWith("_nvenc") ? [] : undefined;
    this.#proc = new FfmpegProcess(
      this.#path,
      ffmpegArgs(config, codec, format),
      codec,
      format,
      (au) => this.#emit(au),
    );
  }

  #emit(au: AccessUnit): void {
    if (this.#state === "closed") return;
    const timestamp = this.#timestamps.shift();
    if (timestamp === undefined) throw new Error("ffmpeg produced more pictures than frames it was given");
    const config = this.#config!;
    let metadata: ChunkMetadata | undefined;
    if (!this.#sentConfig) {
      metadata = { decoderConfig: decoderConfigFor(this.#codecInUse!, au, config.width, config.height) };
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

  /** The process died: fall back to software if a hardware encoder never opened, else report the failure. */
  async #recover(proc: FfmpegProcess): Promise<void> {
    proc.kill();
    const exit = await proc.exited;
    const requested = this.#config!.codec;
    if (proc.codec.endsWith("_nvenc") && !proc.producedOutput && this.#retained) {
      const info: EncoderFallback = {
        requested,
        used: SOFTWARE_FOR[proc.codec],
        reason: stderrReason(exit.stderr),
      };
      const first = !hardwareFailures.has(proc.codec);
      hardwareFailures.set(proc.codec, info);
      if (first) this.#init.fallback?.(info);
      const replay = this.#retained;
      this.#proc = undefined;
      this.#timestamps = [];
      this.#start(proc.format);
      for (const frame of replay) {
        this.#timestamps.push(frame.timestampUs);
        await this.#proc!.write(frame.data);
      }
      return;
    }
    throw new FatalError(
      `ffmpeg (${proc.codec}) failed with exit code ${exit.code}: ${stderrReason(exit.stderr)}`,
    );
  }

  async #finishSegment(): Promise<void> {
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
        throw new FatalError(
          `ffmpeg returned ${missing} fewer pictures than frames (${exit.stderr || "no message"})`,
        );
      }
    }
  }
}
