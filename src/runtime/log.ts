/**
 * Logging in MSight's line format (`2026-01-24 11:28:45,684 - <device> - <node> - INFO :: <message>`) or JSON lines,
 * on stderr. Secrets registered with {@linkcode Logger.addSecret} (passwords, URL credentials, keys) are replaced by
 * `***` in every line, whichever part of the code wrote it.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const log = new Logger({ device: "edge-1", node: "rtsp_node", level: "INFO", format: "text" });
 * log.info("connecting to rtsp://cam/live");
 * ```
 * @module
 */

/** Python logging's level names, as MSight's `--logging-level` takes them. */
export const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** `text` is MSight's line format; `json` writes one JSON object per line. */
export type LogFormat = "text" | "json";

const RANK: Record<LogLevel, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };

/** Where and how a {@linkcode Logger} writes. */
export interface LoggerOptions {
  device: string;
  node: string;
  level?: LogLevel;
  format?: LogFormat;
  /** Receives each finished line (without newline); defaults to stderr. */
  sink?: (line: string) => void;
}

const encoder = new TextEncoder();
function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Formats a Date as Python logging's `asctime`: local time, `YYYY-MM-DD HH:MM:SS,mmm`. */
export function asctime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`;
}

/** Masks `user:password@` in URLs, whatever the scheme. */
export function maskUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^/@\s:]*)(:[^/@\s]*)?@/gi, "$1***:***@");
}

/** A leveled logger shared by every module of one node. */
export class Logger {
  #device: string;
  #node: string;
  #rank: number;
  #format: LogFormat;
  #sink: (line: string) => void;
  #secrets: string[];

  constructor(opts: LoggerOptions, secrets: string[] = []) {
    this.#device = opts.device;
    this.#node = opts.node;
    this.#rank = RANK[opts.level ?? "INFO"];
    this.#format = opts.format ?? "text";
    this.#sink = opts.sink ?? writeStderr;
    this.#secrets = secrets;
  }

  /** Every later line has `secret` replaced by `***` (ignored when shorter than 3 characters). */
  addSecret(secret: string | undefined): void {
    if (secret && secret.length >= 3 && !this.#secrets.includes(secret)) this.#secrets.push(secret);
  }

  /** True when a message of `level` would be written (use it to skip building costly messages). */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#rank;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log("DEBUG", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log("INFO", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log("WARNING", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log("ERROR", msg, fields);
  }
  critical(msg: string, fields?: Record<string, unknown>): void {
    this.log("CRITICAL", msg, fields);
  }

  /** Writes one line at `level`; `fields` appear as `key=value` in text and as keys in JSON. */
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < this.#rank) return;
    const now = new Date();
    let line: string;
    if (this.#format === "json") {
      line = JSON.stringify({
        time: now.toISOString(),
        level,
        device: this.#device,
        node: this.#node,
        msg,
        ...fields,
      }, (_k, v) => typeof v === "bigint" ? v.toString() : v);
    } else {
      const extra = fields
        ? " " +
          Object.entries(fields).map(([k, v]) => `${k}=${typeof v === "string" ? v : String(v)}`).join(" ")
        : "";
      line = `${asctime(now)} - ${this.#device} - ${this.#node} - ${level} :: ${msg}${extra}`;
    }
    this.#sink(this.#redact(line));
  }

  /** A logger for the same node that writes through the same sink (shares secrets). */
  child(node: string): Logger {
    return new Logger({
      device: this.#device,
      node,
      level: (Object.keys(RANK) as LogLevel[]).find((l) => RANK[l] === this.#rank),
      format: this.#format,
      sink: this.#sink,
    }, this.#secrets);
  }

  #redact(line: string): string {
    let out = maskUrlCredentials(line);
    for (const s of this.#secrets) out = out.split(s).join("***");
    return out;
  }
}
