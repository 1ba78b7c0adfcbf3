/**
 * Reads ffmpeg's stderr: splits it into lines and recognises the few that matter to the capture: per-frame lines
 * (the stream timestamp of every output frame, and its size for raw frames), the stream dump's video lines, CUDA
 * start-up failures, and decode errors.
 *
 * @example
 * ```ts
 * import { classifyFfmpegLine, LineSplitter } from "./stderr.ts";
 * declare const chunk: Uint8Array;
 * const lines = new LineSplitter();
 * for (const line of lines.push(chunk)) {
 *   const ev = classifyFfmpegLine(line);
 *   if (ev.kind === "size") console.log(ev.width, ev.height);
 *   else if (ev.kind === "error") console.log(ev.text);
 * }
 * ```
 * @module
 */

/**
 * Splits a byte stream into text lines at `\n` or `\r` (ffmpeg ends progress lines with `\r`).
 *
 * @example
 * ```ts
 * const s = new LineSplitter();
 * s.push(new TextEncoder().encode("a\nb")); // ["a"]
 * s.push(new TextEncoder().encode("\n")); // ["b"]
 * ```
 */
export class LineSplitter {
  #decoder = new TextDecoder();
  #rest = "";
  #maxLine: number;

  /** `maxLine` bounds a line that never ends (its head is kept, the rest dropped). */
  constructor(maxLine = 64 * 1024) {
    this.#maxLine = maxLine;
  }

  /**
   * Returns the lines completed by `chunk`, without their terminators; empty lines are skipped.
   *
   * @example
   * ```ts
   * declare const splitter: LineSplitter, chunk: Uint8Array;
   * declare function handle(line: string): void;
   * for (const line of splitter.push(chunk)) handle(line);
   * ```
   */
  push(chunk: Uint8Array): string[] {
    const text = this.#rest + this.#decoder.decode(chunk, { stream: true });
    const parts = text.split(/\r\n|\r|\n/);
    this.#rest = parts.pop() ?? "";
    if (this.#rest.length > this.#maxLine) this.#rest = this.#rest.slice(0, this.#maxLine);
    return parts.filter((l) => l.length > 0);
  }

  /**
   * Returns the unterminated last line, if any (call at end of stream).
   *
   * @example
   * ```ts
   * declare const splitter: LineSplitter;
   * const last = splitter.flush();
   * ```
   */
  flush(): string[] {
    const rest = this.#rest + this.#decoder.decode();
    this.#rest = "";
    return rest.length > 0 ? [rest] : [];
  }
}

/** What one stderr line of ffmpeg tells the capture. */
export type FfmpegLine =
  /**
   * A `metadata` filter's report of one frame (see `frameReportFilters`): its pts in µs (NaN for none). The key line
   * that follows says which pts it was.
   */
  | { kind: "report"; us: number }
  /**
   * The line after a report: `pts` for the stream's own timestamp, `clock` for ffmpeg's wall clock (epoch µs) when
   * the frame left the decoder.
   */
  | { kind: "report-key"; key: "pts" | "clock" }
  /** A `showinfo` line (raw frames, after scaling): the size of the frame that will follow on stdout. */
  | { kind: "size"; width: number; height: number }
  /**
   * A `Stream #0:0...: Video:` line of ffmpeg's stream dump: the pixel format and colour range (`tv`, `pc`, or ""
   * when unlabelled) of a video stream. The input's dump comes first; the output's follows it.
   */
  | { kind: "video-stream"; pixFmt: string; range: string }
  /** CUDA could not be used: no driver, no device, or the decoder could not start on it. */
  | { kind: "hwaccel-error"; text: string }
  /** The decoder reported damaged or undecodable data. */
  | { kind: "decode-error"; text: string }
  /** Any other error-looking line (kept as the reason when ffmpeg exits). */
  | { kind: "error"; text: string }
  | { kind: "other"; text: string };

/** The lines that are not frame reports: what the capture logs, counts and acts on. */
export type FfmpegLogLine = Exclude<FfmpegLine, { kind: "report" | "report-key" | "size" }>;

// "Stream #0:0: Video: h264 (High), yuvj420p(pc, bt709, progressive), 1280x720, 25 fps" (the codec part has no comma).
const VIDEO_STREAM = /^\s*Stream #\d+:\d+.*?: Video: [^,]+, ([a-z0-9_]+)(?:\(([^)]*)\))?/;
// "frame:12   pts:1763780000123456 pts_time:1.76378e+09" (pts_time keeps 6 digits: the integer pts is the exact one).
// Unanchored: an ffmpeg log line written in pieces by another thread may land in front of it.
const REPORT = /frame:\d+\s+pts:(-?\d+|NOPTS)\s+pts_time:/;
const SHOWINFO = /\bn:\s*\d+\s+pts:.*?\bs:(\d+)x(\d+)/;
// Seen on this machine without a GPU: "Cannot load libcuda.so.1", "Could not dynamically load CUDA",
// "Device creation failed: -1.", "Device setup failed for decoder on input stream #0:0 : Operation not permitted".
// The others are what ffmpeg prints when a device exists but decoding on it cannot start.
const HWACCEL =
  /Cannot load libcuda|Could not dynamically load CUDA|cu(Init|CtxCreate)[^\n]*fail|CUDA_ERROR|Device creation failed|Device setup failed|No device available for decoder|hwaccel initiali[sz]ation returned error|Failed setup for format cuda|Error initializing hwaccel|Failed to create cuda/i;
const DECODE =
  /error while decoding|concealing \d+ DC|decode_slice_header error|non-existing PPS|no frame!|Invalid NAL unit|missing picture in access unit|corrupt(ed)? (input|frame|packet|macroblock)|illegal short term buffer|mmco: unref short failure|Invalid data found when processing input/i;
const DECODER_CONTEXT = /^\[(h264|hevc|h265|mpeg4|mjpeg|vp8|vp9|av1|mpeg2video)[ _@]/;
const ERRORISH =
  /error|failed|refused|timed out|timeout|not found|unauthori[sz]ed|forbidden|invalid|unreachable|no route|could not|cannot|end of file|broken pipe|reset by peer|denied|unsupported/i;

/** The metadata keys `frameReportFilters` adds, one per report; each report line is followed by `key=1`. */
export const REPORT_KEYS = { pts: "edge_pts", clock: "edge_clock" } as const;
const PTS_KEY_LINE = `${REPORT_KEYS.pts}=1`, CLOCK_KEY_LINE = `${REPORT_KEYS.clock}=1`;

const microseconds = (s: string) => (s === "NOPTS" ? NaN : Number(s));

/**
 * Classifies one line of ffmpeg's stderr.
 *
 * @example
 * ```ts
 * classifyFfmpegLine("frame:2    pts:100000  pts_time:0.1"); // { kind: "report", us: 100000 }
 * classifyFfmpegLine("edge_pts=1"); // { kind: "report-key", key: "pts" }
 * classifyFfmpegLine("[Parsed_showinfo_0 @ 0x1] n:   2 pts:1.7e15 pts_time:1.7e9  pos: -1 fmt:bgr24 sar:1/1 s:640x480 i:P");
 * // { kind: "size", width: 640, height: 480 }
 * ```
 */
export function classifyFfmpegLine(line: string): FfmpegLine {
  // Report lines first: they are nearly every line ffmpeg writes while streaming.
  if (line.endsWith(PTS_KEY_LINE)) return { kind: "report-key", key: "pts" };
  if (line.endsWith(CLOCK_KEY_LINE)) return { kind: "report-key", key: "clock" };
  const report = line.includes("pts_time:") && !line.includes("showinfo") ? REPORT.exec(line) : null;
  if (report) return { kind: "report", us: microseconds(report[1]) };
  if (line.includes("showinfo")) {
    const m = SHOWINFO.exec(line);
    if (m) return { kind: "size", width: +m[1], height: +m[2] };
    return { kind: "other", text: line };
  }
  const stream = VIDEO_STREAM.exec(line);
  if (stream) {
    const range = (stream[2] ?? "").split(",").map((p) => p.trim()).find((p) => p === "tv" || p === "pc") ??
      "";
    return { kind: "video-stream", pixFmt: stream[1], range };
  }
  if (HWACCEL.test(line)) return { kind: "hwaccel-error", text: line.trim() };
  if (DECODE.test(line) && (DECODER_CONTEXT.test(line) || /error while decoding/i.test(line))) {
    return { kind: "decode-error", text: line.trim() };
  }
  if (ERRORISH.test(line)) return { kind: "error", text: line.trim() };
  return { kind: "other", text: line };
}
