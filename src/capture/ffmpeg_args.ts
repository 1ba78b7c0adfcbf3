/**
 * Everything about the ffmpeg command line of the RTSP capture: URL validation, the argument list, the JPEG quality
 * mapping, and the one-off checks that ffmpeg exists and that CUDA can start.
 *
 * @example
 * ```ts
 * import { buildFfmpegArgs, validateRtspUrl } from "./ffmpeg_args.ts";
 * validateRtspUrl("rtsp://cam/live");
 * const args = buildFfmpegArgs({ url: "rtsp://cam/live", transport: "tcp", timeoutS: 5, format: "jpeg" });
 * ```
 * @module
 */

import { outputChild, spawnChild } from "../runtime/children.ts";
import { FatalError, UsageError } from "../runtime/errors.ts";
import type { FrameFormat } from "../codec/frame.ts";
import { maskUrlCredentials } from "../runtime/log.ts";
import { childEnv, spawnRefusal } from "../runtime/spawn_env.ts";
import { classifyFfmpegLine, REPORT_KEYS } from "./stderr.ts";

/** RTSP lower transport, as ffmpeg's `-rtsp_transport`. */
export type RtspTransport = "tcp" | "udp";

/**
 * Throws a one-line {@linkcode UsageError} unless `url` is an `rtsp://` or `rtsps://` URL with a host; returns it.
 *
 * @example
 * ```ts
 * validateRtspUrl("rtsp://user:pw@10.0.0.5:554/stream1"); // ok
 * validateRtspUrl("http://cam/x"); // throws UsageError (exit 2)
 * ```
 */
export function validateRtspUrl(url: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // Reported just below, with the value and what would be right.
    parsed = undefined;
  }
  if (!parsed || !/^rtsps?:$/.test(parsed.protocol) || parsed.hostname === "") {
    throw new UsageError(
      `invalid --url ${
        JSON.stringify(maskUrlCredentials(url))
      }: expected rtsp://HOST[:PORT]/PATH or rtsps://...`,
    );
  }
  return url;
}

/**
 * Masks `user:password@` in a URL for logs (the same rule as the logger's).
 *
 * @example
 * ```ts
 * maskUrl("rtsp://admin:secret@cam/live"); // "rtsp://***:***@cam/live"
 * ```
 */
export function maskUrl(url: string): string {
  return maskUrlCredentials(url);
}

// Measured on the Mcity frames (960x720, 4:2:0): for each libjpeg quality (what OpenCV's IMWRITE_JPEG_QUALITY and
// MSight use), the ffmpeg mjpeg -q:v whose output has the same PSNR. ffmpeg's mjpeg reaches that PSNR with smaller
// files (Q50: 53 KB libjpeg, 41 KB ffmpeg q 9, both 34.5-34.7 dB). Below quality 20 libjpeg degrades faster than
// ffmpeg's coarsest scale, so those all map to 31.
const QUALITY_TO_QSCALE: ReadonlyArray<readonly [number, number]> = [
  [1, 31],
  [15, 31],
  [20, 19],
  [30, 14],
  [40, 11],
  [50, 9],
  [60, 8],
  [70, 7],
  [80, 5],
  [85, 4],
  [90, 3],
  [95, 2],
  [100, 1],
];

/**
 * Maps a JPEG quality 1..100 (libjpeg/OpenCV scale; MSight uses 50) to ffmpeg's mjpeg `-q:v` 1..31 giving the same
 * image fidelity (equal PSNR, measured), interpolating linearly between measured points.
 *
 * @example
 * ```ts
 * jpegQualityToQscale(50); // 9
 * jpegQualityToQscale(90); // 3
 * ```
 */
export function jpegQualityToQscale(quality: number): number {
  if (!Number.isFinite(quality) || quality < 1 || quality > 100) {
    throw new UsageError(`invalid JPEG quality ${quality}: expected 1..100`);
  }
  for (let i = 1; i < QUALITY_TO_QSCALE.length; i++) {
    const [q1, s1] = QUALITY_TO_QSCALE[i];
    if (quality <= q1) {
      const [q0, s0] = QUALITY_TO_QSCALE[i - 1];
      return Math.round(s0 + (s1 - s0) * (quality - q0) / (q1 - q0));
    }
  }
  return 1;
}

/** What {@linkcode buildFfmpegArgs} needs. */
export interface FfmpegArgsOptions {
  url: string;
  transport: RtspTransport;
  /** Socket open/read timeout in seconds (ffmpeg's rtsp `-timeout`, given in µs). */
  timeoutS: number;
  /** How frames leave ffmpeg: JPEG images (ffmpeg's mjpeg encoder) or raw BGR pixels (MSight's OpenCV layout). */
  format: FrameFormat;
  /** libjpeg-style quality 1..100 (50). */
  jpegQuality?: number;
  /** Scale factor applied in ffmpeg, (0, 1] typically (1 = no scaling). */
  resizeRatio?: number;
  /** CUDA device index to decode on; undefined = CPU. */
  cudaDevice?: number;
  /** Seconds of stream ffmpeg may read to identify it before the first frame (1). */
  analyzeS?: number;
  /** Decode without frame threading, for latency (true). */
  lowDelay?: boolean;
  /** Decoder threads (1); 0 lets ffmpeg start one per core. */
  decoderThreads?: number;
  /** Keep at most this many frames per second (0 or undefined: every frame); see {@linkcode buildFfmpegArgs}. */
  maxFps?: number;
  /**
   * The camera sends limited-range 4:2:0 (`yuv420p`, what nearly every H.264/H.265 camera sends): JPEG frames at full
   * size then get their full range from a look-up table instead of ffmpeg's scaler (false). See
   * {@linkcode RANGE_EXPAND_FILTERS}; the capture checks the stream and falls back when the camera sends anything else.
   */
  limitedYuv420?: boolean;
}

/**
 * Limited-range (16-235) 4:2:0 → full-range (0-255) JPEG samples, in place, by a look-up table per plane.
 *
 * A JPEG (JFIF) holds full-range samples, and cameras send limited range, so every frame needs the expansion. Left to
 * ffmpeg (`-pix_fmt yuvj420p`), swscale does it on its general scaling path, which on this 2-core machine at 1280×720
 * costs about as much as the JPEG encoding itself: 425 frames took 3.66 → 3.25 CPU s with the table (median of six
 * interleaved runs, one encoder thread, standard Huffman tables), the JPEGs within 46 dB PSNR of swscale's.
 * `setparams` then labels the frames full range, which the mjpeg encoder requires
 * for `yuv420p` and which keeps ffmpeg 5.1 from converting them a second time.
 *
 * @example
 * ```ts
 * const vf = [...frameReportFilters(), ...RANGE_EXPAND_FILTERS].join(",");
 * ```
 */
export const RANGE_EXPAND_FILTERS: readonly string[] = [
  "lutyuv=y='clip((val-16)*255/219,0,255)':u='clip((val-128)*255/224+128,0,255)':v='clip((val-128)*255/224+128,0,255)'",
  "setparams=range=pc",
];

/**
 * The filters that report each output frame on stderr, before it is scaled, converted and encoded: its stream pts,
 * and the wall-clock time at which it left the decoder, both in µs (`settb`), both printed by ffmpeg itself.
 *
 * Why ffmpeg's own clock: the node then need not read a frame's report the moment it is written. It reads stderr
 * when the frame's bytes arrive on stdout, so a frame wakes the node once rather than twice (~0.3 ms of CPU per
 * frame on a small VM), and the arrival time carries no pipe or event-loop delay at all. `setpts=RTCTIME` puts
 * ffmpeg's wall clock in the pts for the second report; `setpts=N` later gives the encoder its own.
 *
 * Each report is one line `frame:N pts:P pts_time:T` and one line `key=1`, each in one write() straight to fd 2
 * (`direct`). (`showinfo` writes its line in ~20 unbuffered pieces, each waking the reader.)
 *
 * @example
 * ```ts
 * frameReportFilters().join(","); // "settb=1/1000000,metadata=mode=add:key=edge_pts:value=1,metadata=mode=print:..."
 * ```
 */
export function frameReportFilters(): string[] {
  // The print filter prints only frames that carry its key, and decoded frames carry none: hence the add.
  const report = (key: string) => [
    `metadata=mode=add:key=${key}:value=1`,
    `metadata=mode=print:key=${key}:file='pipe\\:2':direct=1`,
  ];
  return ["settb=1/1000000", ...report(REPORT_KEYS.pts), "setpts=RTCTIME", ...report(REPORT_KEYS.clock)];
}

/**
 * The pixel formats the CPU decoders hand over (H.264/H.265 at 8, 10 and 12 bits, 4:2:0/4:2:2/4:4:4, limited or
 * full range, and grey), planar. See {@linkcode decodedFormatFilter}.
 */
export const CPU_DECODED_FORMATS: readonly string[] = [
  "yuv420p",
  "yuvj420p",
  "yuv420p10le",
  "yuv420p12le",
  "yuv422p",
  "yuvj422p",
  "yuv422p10le",
  "yuv422p12le",
  "yuv444p",
  "yuvj444p",
  "yuv444p10le",
  "yuv444p12le",
  "gray",
  "gray10le",
  "gray12le",
];

/**
 * The filter that turns what a CUDA decoder hands over (NV12 for 8-bit 4:2:0, P010/P016 for 10/12 bits, yuv444p)
 * into what the CPU decoder hands over for the same stream, so the rest of the chain, and so the JPEGs and BGR
 * frames, are the CPU path's. Without it, `lutyuv` (which cannot take NV12) got NV12 through an automatic scaler
 * to `yuvj420p`, which already expands limited to full range, and then expanded the range a second time. With the
 * range table the camera is limited-range 8-bit 4:2:0, so `yuv420p` exactly; otherwise ffmpeg picks the nearest of
 * {@linkcode CPU_DECODED_FORMATS} (NV12 → yuv420p, P010 → yuv420p10le), a plain repack without any range change.
 *
 * @example
 * ```ts
 * decodedFormatFilter(true); // "format=yuv420p"
 * ```
 */
export function decodedFormatFilter(rangeTable: boolean): string {
  return `format=${rangeTable ? "yuv420p" : CPU_DECODED_FORMATS.join("|")}`;
}

/**
 * Whether a session with these options expands the colour range by {@linkcode RANGE_EXPAND_FILTERS}: JPEG at full
 * size from a limited-range yuv420p camera. When scaling, swscale expands the range in the same pass at no extra
 * cost, and raw BGR goes through swscale anyway, so the table only pays for full-size JPEG.
 *
 * @example
 * ```ts
 * usesRangeTable({ format: "jpeg", limitedYuv420: true }); // true
 * usesRangeTable({ format: "jpeg", limitedYuv420: true, resizeRatio: 0.5 }); // false
 * ```
 */
export function usesRangeTable(
  o: Pick<FfmpegArgsOptions, "format" | "resizeRatio" | "limitedYuv420">,
): boolean {
  return o.format === "jpeg" && (o.resizeRatio ?? 1) === 1 && (o.limitedYuv420 ?? false);
}

/** Where a stream's first frame sits in its 1/maxFps slot (see {@linkcode thinningFilter}). */
const SLOT_PHASE = 0.45;
/** A frame at least this many 1/maxFps periods after the last one kept is kept (see {@linkcode thinningFilter}). */
const MIN_PERIODS = 0.9;

/**
 * ffmpeg's `select` filter that keeps at most `maxFps` frames per second of the stream's time, never duplicating
 * one (ffmpeg's fps filter would duplicate frames of a slower camera to make a constant rate). A frame is kept
 * when it is the first of its 1/maxFps slot, the slots counted from the stream's first frame placed 0.45 into one
 * (so a camera at maxFps keeps every frame with its timestamps jittering up to ±0.2 of a period, and 20, 25, 30,
 * 50 or 60 fps frames never sit on a slot's edge, where rounding would decide); or when it comes 0.9 period or more
 * after the last one kept (a camera at or just below maxFps whose frames drift across slot edges with jittery
 * timestamps); or when the stream's time is unknown or goes backwards (a frame is never held back for that). A
 * faster camera (25 fps at 10) keeps exactly maxFps frames a second, spread as its own frames allow (0.08 and
 * 0.12 s apart); one between maxFps and maxFps / 0.9 keeps every frame, for the aggregator to thin.
 *
 * @example
 * ```ts
 * import { thinningFilter } from "./ffmpeg_args.ts";
 * thinningFilter(10); // "select='isnan(t)+isnan(prev_selected_t)+lt(t,prev_selected_t)+gte(t-prev_selected_t,0.09)+..."
 * ```
 */
export function thinningFilter(maxFps: number): string {
  const slot = (t: string) => `floor((${t}-start_t)*${maxFps}+${SLOT_PHASE})`;
  const keep = [
    "isnan(t)",
    "isnan(prev_selected_t)",
    "lt(t,prev_selected_t)",
    `gte(t-prev_selected_t,${Number((MIN_PERIODS / maxFps).toPrecision(12))})`,
    `gt(${slot("t")},${slot("prev_selected_t")})`,
  ];
  return `select='${keep.join("+")}'`;
}

/**
 * The argument list (without the program) for one capture session: RTSP in, one frame line per frame on stderr
 * ({@linkcode frameReportFilters}), frames on stdout.
 *
 * `-fps_mode passthrough` keeps ffmpeg from duplicating or dropping frames for a constant rate, so stdout frames and
 * frame lines pair one to one. With CUDA, frames are decoded on the GPU and copied back to system memory (no
 * `-hwaccel_output_format`), because the JPEG encoder and the pipe need them there, and converted to the CPU
 * decoder's pixel format ({@linkcode decodedFormatFilter}).
 *
 * @example
 * ```ts
 * const url = "rtsp://cam/live";
 * const args = buildFfmpegArgs({ url, transport: "udp", timeoutS: 5, format: "bgr24", resizeRatio: 0.5 });
 * new Deno.Command("ffmpeg", { args, stdout: "piped", stderr: "piped" }).spawn();
 * ```
 */
export function buildFfmpegArgs(o: FfmpegArgsOptions): string[] {
  const args = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"];
  args.push("-rtsp_transport", o.transport, "-timeout", String(Math.max(1, Math.round(o.timeoutS * 1e6))));
  // ffmpeg's default 5 s stream analysis holds the first frames back ~3 s on every (re)connect; 1 s is enough to
  // find the size of an H.264/H.265 stream (its SDP carries the parameter sets).
  // nobuffer: the packets read while analysing are dropped instead of being decoded later in one burst, whose frames
  // would all arrive at once with no usable arrival time; decoding starts at the next keyframe instead.
  args.push("-analyzeduration", String(Math.round((o.analyzeS ?? 1) * 1e6)), "-fflags", "nobuffer");
  // Frame-threaded decoding holds each frame back by (threads - 1) frame intervals (200 ms at 10 fps on 2 cores);
  // low_delay turns it off (slice threads remain), so frames leave ffmpeg as soon as they are decoded.
  if (o.lowDelay ?? true) args.push("-flags", "low_delay");
  // One decoder thread (unless asked) and one filter thread: ffmpeg otherwise starts a thread per core for each
  // (slice threads, which a camera's single-slice stream leaves idle, and the filter graph's pool); each costs
  // memory, and waking them CPU. The cameras of a box are what runs in parallel. Measured: docs/design.md, "Capture".
  args.push("-threads", String(o.decoderThreads ?? 1), "-filter_threads", "1");
  if (o.cudaDevice !== undefined) args.push("-hwaccel", "cuda", "-hwaccel_device", String(o.cudaDevice));
  args.push("-i", o.url, "-map", "0:v:0", "-an", "-sn", "-dn");
  const filters: string[] = [];
  // Before scaling and JPEG encoding (the costly part).
  if (o.maxFps && o.maxFps > 0) filters.push(thinningFilter(o.maxFps));
  // Reported after the frame selection (one report per frame on stdout) and before any costly filter (the clock
  // report is the frame's arrival).
  filters.push(...frameReportFilters());
  const lut = usesRangeTable(o);
  if (o.cudaDevice !== undefined) filters.push(decodedFormatFilter(lut));
  const r = o.resizeRatio ?? 1;
  if (r !== 1) {
    // Even dimensions: 4:2:0 JPEG and most consumers want them; at least 2x2.
    filters.push(`scale=w='max(2,trunc(iw*${r}/2)*2)':h='max(2,trunc(ih*${r}/2)*2)'`);
  }
  // A JPEG carries its size in its header; raw BGR needs each frame's size to be cut from the byte stream, which
  // only showinfo reports per frame (a camera may change resolution mid-stream). checksum=0: those cost CPU.
  if (o.format !== "jpeg") filters.push("showinfo=checksum=0");
  if (lut) filters.push(...RANGE_EXPAND_FILTERS);
  // The encoder gets the frame number as its pts (in the reports' µs time base): the mjpeg encoder aborts ffmpeg on a
  // pts that does not increase ("Invalid pts (65) <= last (65)"), which a camera's duplicate or jittery timestamps
  // rounded to the frame rate produce. The real pts were already reported, and the pipe carries no timestamps.
  filters.push("setpts=N");
  // threads 1: ffmpeg's mjpeg and rawvideo encoders are frame-threaded by default, which holds every frame back by
  // one frame interval or more (measured: 100 ms at 10 fps). One thread adds no delay (a 1280×720 JPEG takes ~4 ms)
  // and, with several cameras sharing the cores, costs less CPU than slice threads.
  // flush_packets: hand each frame to the pipe at once rather than when the output buffer fills.
  args.push("-vf", filters.join(","), "-fps_mode", "passthrough", "-enc_time_base", "1:1000000");
  args.push("-threads", "1", "-flush_packets", "1");
  if (o.format === "jpeg") {
    const q = jpegQualityToQscale(o.jpegQuality ?? 50);
    args.push(
      "-c:v",
      "mjpeg",
      "-pix_fmt",
      lut ? "yuv420p" : "yuvj420p",
      "-qmin",
      "1",
      "-qmax",
      "31",
      "-q:v",
      String(q),
    );
    // Standard Huffman tables, as libjpeg and OpenCV (MSight's cv2.imencode) write by default: ffmpeg's default
    // "optimal" tables take a second pass over every frame for ~8% smaller files. Measured with four 1280×720 25 fps
    // cameras at once, this and one encoder thread took ~10% off these ffmpegs' CPU.
    args.push("-huffman", "default");
    args.push("-f", "image2pipe", "pipe:1");
  } else {
    args.push("-c:v", "rawvideo", "-pix_fmt", "bgr24", "-f", "rawvideo", "pipe:1");
  }
  return args;
}

/**
 * Runs `ffmpegPath -version`; returns its first line, or throws {@linkcode FatalError} with exit code 2 and one clear
 * line when ffmpeg is missing or not executable.
 *
 * @example
 * ```ts
 * const version = await checkFfmpeg("ffmpeg"); // "ffmpeg version 5.1.9-0+deb12u1 ..."
 * ```
 */
export async function checkFfmpeg(ffmpegPath: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await outputChild(ffmpegPath, { args: ["-hide_banner", "-version"], stdin: "null", ...childEnv() });
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) {
      // Deno's sandbox, not the file system, refused: installing ffmpeg would not help. Deno's reason says why.
      throw new FatalError(spawnRefusal(ffmpegPath, err), 2);
    }
    const why = err instanceof Deno.errors.NotFound
      ? "not found"
      : err instanceof Deno.errors.PermissionDenied
      ? "not executable (permission denied)"
      : String(err instanceof Error ? err.message : err);
    throw new FatalError(
      `ffmpeg ${
        JSON.stringify(ffmpegPath)
      } ${why}: install ffmpeg (e.g. apt install ffmpeg) or give its path`,
      2,
    );
  }
  const first = new TextDecoder().decode(out.stdout).split("\n")[0] ?? "";
  if (!out.success || !first.startsWith("ffmpeg")) {
    throw new FatalError(`${JSON.stringify(ffmpegPath)} does not run as ffmpeg (exit ${out.code})`, 2);
  }
  return first;
}

/** Result of {@linkcode probeCuda}. */
export type CudaProbe = { ok: true } | { ok: false; reason: string };

/**
 * Asks ffmpeg to create a CUDA device `gpu` (about 0.1 s without a GPU); tells whether CUDA decode can start and, if
 * not, ffmpeg's own reason (e.g. `Cannot load libcuda.so.1`).
 *
 * @example
 * ```ts
 * import type { Logger } from "../runtime/log.ts";
 * declare const log: Logger;
 * const cuda = await probeCuda("ffmpeg", 0);
 * if (!cuda.ok) log.warn(`CUDA unavailable (${cuda.reason}); decoding on the CPU`);
 * ```
 */
export async function probeCuda(ffmpegPath: string, gpu: number, timeoutS = 15): Promise<CudaProbe> {
  const child = spawnChild(ffmpegPath, {
    args: [
      "-hide_banner",
      "-nostdin",
      "-init_hw_device",
      `cuda=probe:${gpu}`,
      "-f",
      "lavfi",
      "-i",
      "nullsrc=s=64x64:d=0.1",
      "-frames:v",
      "1",
      "-f",
      "null",
      "-",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    ...childEnv(),
  });
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutS * 1000);
  try {
    const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
    if (status.success) return { ok: true };
    const lines = err.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
    const hw = lines.find((l) => classifyFfmpegLine(l).kind === "hwaccel-error");
    const reason = hw ?? lines.at(-1) ?? `ffmpeg exited with code ${status.code}`;
    return { ok: false, reason: stripContext(reason) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Removes ffmpeg's `[component @ 0x55...] ` prefix from a log line.
 *
 * @example
 * ```ts
 * stripContext("[AVHWDeviceContext @ 0x55ab] Cannot load libcuda.so.1"); // "Cannot load libcuda.so.1"
 * ```
 */
export function stripContext(line: string): string {
  return line.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "");
}
