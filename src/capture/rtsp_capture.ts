/**
 * The camera side of the RTSP source node, without the bus: pulls an RTSP stream with an `ffmpeg` subprocess
 * and yields its frames (JPEG or raw BGR) with capture timestamps, reconnecting forever with backoff; a
 * watchdog restarts a stalled ffmpeg, CUDA falls back to the CPU, and a slow consumer loses the oldest frames
 * (counted), never the pipe. Design notes (transport, GPU, timestamps, watchdog, backpressure):
 * docs/design.md, "Capture".
 *
 * @example
 * ```ts
 * import { RtspCapture } from "./rtsp_capture.ts";
 * const cap = new RtspCapture({
 *   url: "rtsp://127.0.0.1:8554/live.stream",
 *   transport: "tcp",
 *   gpu: 0,
 *   onEvent: (e) => console.log(describeCaptureEvent(e)),
 * });
 * await cap.start(); // throws FatalError (exit 2) when ffmpeg is missing
 * for await (const f of cap) console.log(f.width, f.height, f.captureTime);
 * await cap.stop();
 * ```
 * @module
 */

import type { FrameFormat } from "../codec/frame.ts";
import { UsageError } from "../runtime/errors.ts";
import { Backoff, delay } from "../runtime/async.ts";
import { FrameClock } from "./clock.ts";
import {
  buildFfmpegArgs,
  checkFfmpeg,
  maskUrl,
  probeCuda,
  type RtspTransport,
  stripContext,
  usesRangeTable,
  validateRtspUrl,
} from "./ffmpeg_args.ts";
import { DropOldestQueue } from "./frame_queue.ts";
import { FfmpegSession, type SessionFrame } from "./session.ts";
import type { FfmpegLogLine } from "./stderr.ts";

export type { RtspTransport } from "./ffmpeg_args.ts";

/**
 * One decoded camera frame.
 *
 * @example
 * ```ts
 * declare const cap: RtspCapture;
 * const f: CapturedFrame = (await cap.next())!;
 * const size = [f.height, f.width, 3]; // MSight ImageData `size`; `is_encoded` = f.format === "jpeg"
 * ```
 */
export interface CapturedFrame {
  /** A complete JPEG image, or `height * width * 3` bytes of BGR pixels, row-major (OpenCV's layout). */
  data: Uint8Array;
  format: FrameFormat;
  width: number;
  height: number;
  /** Wall-clock capture time, epoch seconds (monotonic across the whole capture). */
  captureTime: number;
  /** The stream's own timestamp in seconds, restarting with each ffmpeg session (NaN when unknown). */
  pts: number;
  /** Frames received before this one, over the whole capture. */
  index: number;
}

/**
 * Where the capture is.
 *
 * @example
 * ```ts
 * declare const cap: RtspCapture;
 * const ready = cap.state === "streaming";
 * ```
 */
export type CaptureState = "idle" | "connecting" | "streaming" | "stalled" | "retrying" | "stopped";

/**
 * A state change or notable condition, each emitted once when it happens (never per frame).
 *
 * @example
 * ```ts
 * import type { Logger } from "../runtime/log.ts";
 * declare const log: Logger;
 * const onEvent = (e: CaptureEvent) =>
 *   e.type === "cuda-unavailable" || e.type === "stalled" ? log.warn(describeCaptureEvent(e)) : log.info(describeCaptureEvent(e));
 * ```
 */
export type CaptureEvent =
  | { type: "connecting"; attempt: number; url: string; transport: RtspTransport; cuda: boolean }
  | { type: "streaming"; width: number; height: number; cuda: boolean }
  | { type: "stalled"; silentS: number; phase: "connecting" | "streaming" }
  | { type: "retrying"; delayS: number; attempt: number; reason: string }
  | { type: "cuda-unavailable"; gpu: number; reason: string }
  /** The camera does not send limited-range yuv420p: its frames' range is converted by ffmpeg's scaler from now on. */
  | { type: "colour-range"; pixFmt: string; range: string }
  | { type: "stopped" };

/**
 * Counters and gauges of the capture, for metrics and health checks.
 *
 * @example
 * ```ts
 * import type { Metrics } from "../runtime/metrics.ts";
 * declare const metrics: Metrics, cap: RtspCapture;
 * metrics.gauge("rtsp_reconnects", "ffmpeg restarts", () => cap.stats().reconnects);
 * ```
 */
export interface CaptureStats {
  state: CaptureState;
  framesReceived: number;
  /** Frames dropped because the consumer fell behind. */
  framesDropped: number;
  /** ffmpeg restarts after a failure or stall (not the first connection, not a CUDA→CPU switch). */
  reconnects: number;
  stalls: number;
  /** ffmpeg decoder error lines (damaged data, concealment). */
  decodeErrors: number;
  /**
   * Frames whose stderr report was missing (stamped with their read time instead) plus reports with no frame; 0
   * unless ffmpeg's output stopped pairing one to one.
   */
  unpaired: number;
  /** Frames per second over the last 2 s. */
  fps: number;
  /** Epoch seconds of the last frame (undefined before the first). */
  lastFrameAt: number | undefined;
  /** Whether the current or next session decodes with CUDA. */
  cuda: boolean;
  /** Pid of the running ffmpeg, if any. */
  ffmpegPid: number | undefined;
}

/**
 * Settings of {@linkcode RtspCapture}.
 *
 * @example
 * ```ts
 * const opts: CaptureOptions = { url: "rtsp://cam/live", transport: "udp", gpu: 0, jpegQuality: 50 };
 * ```
 */
export interface CaptureOptions {
  /** `rtsp://` or `rtsps://` URL; credentials allowed (masked in events). */
  url: string;
  /** RTSP lower transport, kept on every reconnect (tcp). */
  transport?: RtspTransport;
  /** CUDA device for decoding; -1 = CPU (-1). */
  gpu?: number;
  /** Scale factor applied by ffmpeg, > 0; dimensions are rounded down to even numbers (1). */
  resizeRatio?: number;
  /** `jpeg` (default) or raw `bgr24`. */
  format?: FrameFormat;
  /** Keep at most this many frames per second, dropped in ffmpeg before encoding (0: every frame). */
  maxFps?: number;
  /** Threads ffmpeg decodes with (1); 0: one per core. See buildFfmpegArgs. */
  decoderThreads?: number;
  /** JPEG quality 1..100 on libjpeg's scale, as MSight's 50 (50); see jpegQualityToQscale. */
  jpegQuality?: number;
  /** Seconds without a frame before ffmpeg is killed and the camera reconnected (10). */
  stallTimeoutS?: number;
  /** ffmpeg's socket open/read timeout in seconds (5). */
  timeoutS?: number;
  /** Reconnect delays: first, cap (0.5, 30). */
  backoffInitialS?: number;
  backoffMaxS?: number;
  /** Frames must flow this long for the backoff to start again from its first delay (10). */
  backoffResetS?: number;
  /** Frames held for a slow consumer before the oldest is dropped (8). */
  maxQueuedFrames?: number;
  /** ffmpeg binary (`ffmpeg` on PATH). */
  ffmpegPath?: string;
  /** State changes and warnings; turn them into log lines with {@linkcode describeCaptureEvent}. */
  onEvent?: (event: CaptureEvent) => void;
  /** Called with each ffmpeg stderr line of interest (errors, decode errors), for DEBUG logging. */
  onFfmpegLine?: (line: FfmpegLogLine) => void;
  /** Wall clock in epoch seconds (Date.now()/1000); injectable for tests. */
  now?: () => number;
}

/**
 * A one-line, credential-free description of a capture event, for the node's log.
 *
 * @example
 * ```ts
 * describeCaptureEvent({ type: "retrying", delayS: 1.04, attempt: 2, reason: "Connection refused" });
 * // "retrying in 1.0 s (attempt 2): Connection refused"
 * ```
 */
export function describeCaptureEvent(e: CaptureEvent): string {
  switch (e.type) {
    case "connecting":
      return `connecting to ${e.url} over ${e.transport}${
        e.cuda ? " (CUDA decode)" : ""
      } (attempt ${e.attempt})`;
    case "streaming":
      return `streaming ${e.width}x${e.height}${e.cuda ? " (CUDA decode)" : ""}`;
    case "stalled":
      return e.phase === "streaming"
        ? `stalled: no frame for ${e.silentS.toFixed(1)} s, restarting ffmpeg`
        : `no frame ${e.silentS.toFixed(1)} s after connecting, restarting ffmpeg`;
    case "retrying":
      return `retrying in ${e.delayS.toFixed(1)} s (attempt ${e.attempt}): ${e.reason}`;
    case "cuda-unavailable":
      return `CUDA decode on GPU ${e.gpu} unavailable (${e.reason}); decoding on the CPU`;
    case "colour-range":
      return `camera sends ${e.pixFmt}${e.range ? ` (${e.range} range)` : ""}, not limited-range yuv420p: ` +
        "restarting ffmpeg once to convert its colours with the scaler instead of the look-up table";
    case "stopped":
      return "capture stopped";
  }
}

const FPS_WINDOW_S = 2;

function positive(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x <= 0) throw new UsageError(`invalid ${name} ${v}: expected a number > 0`);
  return x;
}

/**
 * Pulls frames from an RTSP camera through ffmpeg, forever, until {@linkcode RtspCapture.stop}. Iterate it (one
 * consumer) to receive frames in order.
 *
 * @example
 * ```ts
 * const url = "rtsp://cam/live";
 * const cap = new RtspCapture({ url, format: "bgr24", resizeRatio: 0.5, stallTimeoutS: 5 });
 * await cap.start();
 * const frame = await cap.next(); // CapturedFrame, or undefined after stop()
 * await cap.stop();
 * ```
 */
export class RtspCapture implements AsyncIterable<CapturedFrame> {
  /** The URL with credentials masked, for logs. */
  readonly maskedUrl: string;
  #url: string;
  #password: string;
  #transport: RtspTransport;
  #gpu: number;
  #resize: number;
  #maxFps: number;
  #decoderThreads: number;
  #format: FrameFormat;
  #quality: number;
  #stallS: number;
  #timeoutS: number;
  #resetS: number;
  #ffmpeg: string;
  #onEvent: (e: CaptureEvent) => void;
  #onLine: (l: FfmpegLogLine) => void;
  #now: () => number;
  #backoff: Backoff;
  #clock = new FrameClock();
  #queue: DropOldestQueue<CapturedFrame>;

  #state: CaptureState = "idle";
  #cudaFailed = false;
  /** The camera sends something other than limited-range yuv420p, so the range look-up table must not be used. */
  #notLimitedYuv420 = false;
  #started = false;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #session: FfmpegSession | undefined;
  #sessionStart = 0;
  #sessionFirstFrame: number | undefined;
  #sessionFrames = 0;
  #sessionStalled = false;
  #sessionReason: string | undefined;
  #sessionLut = false;
  #sessionSawStream = false;
  /** This session's frames would get the wrong colours: it is being restarted and they are dropped. */
  #sessionWrongRange = false;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  /** Aborted by stop(): ends a reconnect wait at once. */
  readonly #stop = new AbortController();

  #frames = 0;
  #reconnects = 0;
  #stalls = 0;
  #decodeErrors = 0;
  /** Unpaired frames and reports of the sessions that have ended. */
  #unpaired = 0;
  /** Arrival times of the frames of the last FPS_WINDOW_S seconds. */
  #recent: number[] = [];
  #lastFrameAt: number | undefined;

  /** Validates the options; throws {@linkcode UsageError} (exit 2, one line) on a bad URL or value. */
  constructor(opts: CaptureOptions) {
    this.#url = validateRtspUrl(opts.url);
    this.maskedUrl = maskUrl(opts.url);
    try {
      this.#password = decodeURIComponent(new URL(opts.url).password);
    } catch {
      // The URL was validated by the caller; an unparseable one has no password to mask.
      this.#password = "";
    }
    this.#transport = opts.transport ?? "tcp";
    if (this.#transport !== "tcp" && this.#transport !== "udp") {
      throw new UsageError(`invalid --rtsp-transport ${this.#transport}: expected tcp or udp`);
    }
    this.#gpu = opts.gpu ?? -1;
    if (!Number.isInteger(this.#gpu) || this.#gpu < -1) {
      throw new UsageError(`invalid --gpu ${opts.gpu}: expected -1 (CPU) or a device index >= 0`);
    }
    this.#resize = positive("--resize-ratio", opts.resizeRatio, 1);
    this.#maxFps = opts.maxFps ?? 0;
    if (!(this.#maxFps >= 0) || !Number.isFinite(this.#maxFps)) {
      throw new UsageError(`invalid --max-fps ${opts.maxFps}: expected a number >= 0 (0: every frame)`);
    }
    this.#decoderThreads = opts.decoderThreads ?? 1;
    if (!Number.isInteger(this.#decoderThreads) || this.#decoderThreads < 0) {
      throw new UsageError(
        `invalid --decoder-threads ${opts.decoderThreads}: expected an integer >= 0 (0: one per core)`,
      );
    }
    this.#format = opts.format ?? "jpeg";
    if (this.#format !== "jpeg" && this.#format !== "bgr24") {
      throw new UsageError(`invalid image format ${this.#format}: expected jpeg or bgr24`);
    }
    this.#quality = opts.jpegQuality ?? 50;
    if (!Number.isInteger(this.#quality) || this.#quality < 1 || this.#quality > 100) {
      throw new UsageError(`invalid --jpeg-quality ${opts.jpegQuality}: expected an integer 1..100`);
    }
    this.#stallS = positive("--stall-timeout", opts.stallTimeoutS, 10);
    this.#timeoutS = positive("timeout", opts.timeoutS, 5);
    this.#resetS = positive("backoff reset", opts.backoffResetS, 10);
    this.#backoff = new Backoff({
      initial: positive("backoff initial delay", opts.backoffInitialS, 0.5),
      max: positive("backoff maximum delay", opts.backoffMaxS, 30),
    });
    this.#ffmpeg = opts.ffmpegPath ?? "ffmpeg";
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#onLine = opts.onFfmpegLine ?? (() => {});
    this.#now = opts.now ?? (() => Date.now() / 1000);
    this.#queue = new DropOldestQueue(Math.max(1, Math.floor(opts.maxQueuedFrames ?? 8)));
  }

  /** The current state. */
  get state(): CaptureState {
    return this.#state;
  }

  /**
   * A snapshot of the counters.
   *
   * @example
   * ```ts
   * declare const cap: RtspCapture;
   * const { framesReceived, reconnects, stalls } = cap.stats();
   * ```
   */
  stats(): CaptureStats {
    return {
      state: this.#state,
      framesReceived: this.#frames,
      framesDropped: this.#queue.dropped,
      reconnects: this.#reconnects,
      stalls: this.#stalls,
      decodeErrors: this.#decodeErrors,
      unpaired: this.#unpaired + (this.#session?.unpaired ?? 0),
      fps: this.#recent.filter((t) => t >= this.#now() - FPS_WINDOW_S).length / FPS_WINDOW_S,
      lastFrameAt: this.#lastFrameAt,
      cuda: this.#gpu >= 0 && !this.#cudaFailed,
      ffmpegPid: this.#session?.pid,
    };
  }

  /**
   * Checks ffmpeg (throws {@linkcode FatalError} with exit code 2 when missing), probes CUDA when a GPU was asked
   * for, then starts capturing in the background. Calling it again does nothing.
   *
   * @example
   * ```ts
   * declare const cap: RtspCapture;
   * await cap.start();
   * ```
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await checkFfmpeg(this.#ffmpeg);
    if (this.#gpu >= 0) {
      const probe = await probeCuda(this.#ffmpeg, this.#gpu);
      if (!probe.ok) this.#cudaUnavailable(probe.reason);
    }
    if (this.#stopping) return;
    // A tenth of the stall timeout (0.1-1 s): stalls are caught within 10% of it, and an idle tick is not free
    // (each turn of Deno's event loop costs ~0.2 ms of CPU on our test machine).
    const tick = Math.min(1000, Math.max(100, this.#stallS * 100));
    this.#watchdog = setInterval(() => {
      this.#checkStall();
      // While frames flow, stderr is read when a frame arrives; this bounds how late an error line can be seen.
      this.#session?.pollStderr();
    }, tick);
    this.#loop = this.#run().catch((err) => {
      this.#queue.fail(err);
    });
  }

  /**
   * The next frame, or `undefined` once stopped (rethrows a fatal error such as ffmpeg disappearing).
   *
   * @example
   * ```ts
   * declare const cap: RtspCapture;
   * const f = await cap.next();
   * ```
   */
  next(): Promise<CapturedFrame | undefined> {
    return this.#queue.next();
  }

  [Symbol.asyncIterator](): AsyncIterator<CapturedFrame> {
    return this.#queue[Symbol.asyncIterator]();
  }

  /**
   * Stops capturing: ends the iteration (frames still queued are discarded), terminates ffmpeg (SIGTERM, SIGKILL after 1.5 s) and waits until it has
   * exited. Safe to call more than once, or before start().
   *
   * @example
   * ```ts
   * declare const cap: RtspCapture;
   * Deno.addSignalListener("SIGTERM", () => cap.stop());
   * ```
   */
  async stop(): Promise<void> {
    if (this.#stopping) {
      await this.#loop;
      return;
    }
    this.#stopping = true;
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#stop.abort();
    const session = this.#session;
    if (session) {
      session.kill("SIGTERM");
      const killer = setTimeout(() => session.kill("SIGKILL"), 1500);
      await session.done;
      clearTimeout(killer);
    }
    await this.#loop;
    this.#queue.close({ discard: true });
    this.#setState("stopped");
    this.#onEvent({ type: "stopped" });
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#stopping) {
      attempt++;
      const cuda = this.#gpu >= 0 && !this.#cudaFailed;
      // Only a session that uses the range table must check the camera's pixel format (and restart on a mismatch).
      const lut = usesRangeTable({
        format: this.#format,
        resizeRatio: this.#resize,
        limitedYuv420: !this.#notLimitedYuv420,
      });
      this.#setState("connecting");
      this.#onEvent({ type: "connecting", attempt, url: this.maskedUrl, transport: this.#transport, cuda });
      const session = FfmpegSession.spawn({
        ffmpegPath: this.#ffmpeg,
        args: buildFfmpegArgs({
          url: this.#url,
          transport: this.#transport,
          timeoutS: this.#timeoutS,
          format: this.#format,
          jpegQuality: this.#quality,
          resizeRatio: this.#resize,
          maxFps: this.#maxFps,
          decoderThreads: this.#decoderThreads,
          cudaDevice: cuda ? this.#gpu : undefined,
          limitedYuv420: lut,
        }),
        format: this.#format,
        now: this.#now,
        onFrame: (f) => this.#onFrame(f, cuda),
        onLine: (l) => this.#onFfmpegLine(l),
      });
      this.#session = session;
      this.#sessionStart = this.#now();
      this.#sessionFirstFrame = undefined;
      this.#sessionFrames = 0;
      this.#sessionStalled = false;
      this.#sessionReason = undefined;
      this.#sessionLut = lut;
      this.#sessionSawStream = false;
      this.#sessionWrongRange = false;
      this.#clock.reset();
      const end = await session.done;
      this.#unpaired += session.unpaired;
      this.#session = undefined;
      if (this.#stopping) break;

      if (cuda && this.#cudaFailed && this.#sessionFrames === 0) continue; // at once, on the CPU: not a failure of the camera
      if (this.#sessionWrongRange) continue; // at once, with the scaler: not a failure of the camera either
      if (!this.#sessionStalled && this.#sessionFrames > 0 && /timed out/i.test(this.#sessionReason ?? "")) {
        // The camera went silent on an open socket and ffmpeg's own read timeout (--open-timeout, usually shorter
        // than --stall-timeout) ended the session before the watchdog did: the same stall, reported as one.
        this.#stalls++;
        this.#setState("stalled");
        const silentS = this.#now() - (this.#lastFrameAt ?? this.#sessionStart);
        this.#onEvent({ type: "stalled", silentS, phase: "streaming" });
      }
      const flowedS = this.#sessionFirstFrame === undefined ? 0 : this.#now() - this.#sessionFirstFrame;
      if (flowedS >= this.#resetS) this.#backoff.reset();
      const reason = this.#sessionStalled ? `no frame for ${this.#stallS} s` : this.#sessionReason ??
        (end.signal ? `ffmpeg killed by ${end.signal}` : `ffmpeg exited with code ${end.code}`);
      const delayS = this.#backoff.next();
      this.#reconnects++;
      this.#setState("retrying");
      this.#onEvent({ type: "retrying", delayS, attempt: attempt + 1, reason });
      await delay(delayS * 1000, this.#stop.signal);
    }
  }

  #onFrame(f: SessionFrame, cuda: boolean): void {
    if (this.#sessionWrongRange) return;
    const now = this.#now();
    this.#recent.push(now);
    while (this.#recent.length > 0 && this.#recent[0] < now - FPS_WINDOW_S) this.#recent.shift();
    this.#lastFrameAt = now;
    this.#sessionFrames++;
    if (this.#sessionFirstFrame === undefined) {
      this.#sessionFirstFrame = now;
      this.#setState("streaming");
      this.#onEvent({ type: "streaming", width: f.width, height: f.height, cuda: cuda && !this.#cudaFailed });
    }
    this.#queue.push({
      data: f.data,
      format: this.#format,
      width: f.width,
      height: f.height,
      captureTime: this.#clock.stamp(f.ptsTime, f.arrival),
      pts: f.ptsTime,
      index: this.#frames++,
    });
  }

  #onFfmpegLine(line: FfmpegLogLine): void {
    // ffmpeg quotes the URL in its errors ("rtsp://user:pw@cam/x: Connection refused"): mask before anyone sees it.
    if (line.kind === "video-stream") {
      // The first stream dump is the input's, and stderr delivers it before the report of any frame, so no
      // frame of a mismatched session is ever emitted.
      if (this.#sessionSawStream) return;
      this.#sessionSawStream = true;
      if (this.#sessionLut && !(line.pixFmt === "yuv420p" && line.range !== "pc")) {
        this.#notLimitedYuv420 = true;
        this.#sessionWrongRange = true;
        this.#onEvent({ type: "colour-range", pixFmt: line.pixFmt, range: line.range });
        this.#session?.kill("SIGKILL");
      }
      return;
    }
    if (line.kind === "other") return; // banner, stream dump, progress: not worth redacting
    const l = { ...line, text: this.#redact(line.text) };
    if (l.kind === "decode-error") this.#decodeErrors++;
    else if (l.kind === "hwaccel-error") this.#cudaUnavailable(stripContext(l.text));
    else if (l.kind === "error") this.#sessionReason = stripContext(l.text);
    this.#onLine(l);
  }

  #redact(text: string): string {
    let out = maskUrl(text);
    if (this.#password.length >= 3) out = out.split(this.#password).join("***");
    return out;
  }

  #cudaUnavailable(reason: string): void {
    if (this.#gpu < 0 || this.#cudaFailed) return;
    this.#cudaFailed = true;
    this.#onEvent({ type: "cuda-unavailable", gpu: this.#gpu, reason });
  }

  #checkStall(): void {
    const session = this.#session;
    if (!session || this.#sessionStalled || this.#stopping) return;
    const now = this.#now();
    const streaming = this.#lastFrameAt !== undefined && this.#sessionFirstFrame !== undefined;
    const since = streaming ? (this.#lastFrameAt as number) : this.#sessionStart;
    const limit = streaming ? this.#stallS : this.#stallS + this.#timeoutS;
    if (now - since < limit) return;
    this.#sessionStalled = true;
    this.#stalls++;
    this.#setState("stalled");
    this.#onEvent({ type: "stalled", silentS: now - since, phase: streaming ? "streaming" : "connecting" });
    session.kill("SIGKILL");
  }

  #setState(s: CaptureState): void {
    this.#state = s;
  }
}
