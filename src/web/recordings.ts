/**
 * The recordings index: the segments (`<stem>.mp4` + `<stem>.json`) in the dumper directories the console browses,
 * newest first. A segment's facts come from its `.json` (sensor, start, end, codec, size), read once; a `.mp4`
 * without its `.json` (its `.json` not renamed into place yet, or from elsewhere) is listed from its name alone.
 * Each directory is read flat, as the dumper writes it, and at most {@linkcode MAX_FILES} names per scan.
 *
 * @example
 * ```ts
 * import { RecordingsIndex } from "./recordings.ts";
 * const index = new RecordingsIndex(["/data/videos"]);
 * const segments = await index.list(); // Segment[], newest first
 * ```
 * @module
 */

/** One recorded segment. `id` is `<dir index>/<stem>`, the handle the API and file URLs use. */
export interface Segment {
  id: string;
  dir: number;
  stem: string;
  sensor: string;
  /** Epoch seconds of the first and last frame. */
  start: number;
  end: number;
  codec: string | null;
  width: number | null;
  height: number | null;
  frameCount: number | null;
  bytes: number;
  hasJson: boolean;
  /** Where the page fetches the `.mp4` and the `.json` (null without one). */
  video: string;
  meta: string | null;
}

/** The console's URL of a file under save directory `dir`. */
export function fileUrl(dir: number, name: string): string {
  return `/files/${dir}/${encodeURIComponent(name)}`;
}

/** Most directory entries read per directory and scan (a bound on the work one page load can cause). */
export const MAX_FILES = 50_000;

const STEM = /^(.+)_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})_(\d{6})(?:_\d+)?$/;

/** Sensor and start time (epoch s, UTC) read from a dumper stem; undefined when the name is not one. */
export function parseStem(stem: string): { sensor: string; start: number } | undefined {
  const m = STEM.exec(stem);
  if (!m) return undefined;
  const [, enc, y, mo, d, h, mi, s, us] = m;
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (!Number.isFinite(ms)) return undefined;
  let sensor = enc;
  try {
    sensor = decodeURIComponent(enc);
  } catch {
    // Not percent-encoding after all (a name from another writer): show it as it is.
  }
  return { sensor, start: ms / 1000 + Number(us) / 1e6 };
}

/** The facts of a segment's `.json` text that the console uses, or undefined when it is not one of ours/MSight's. */
export function segmentFacts(text: string): Partial<Segment> | undefined {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof j !== "object" || j === null) return undefined;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const time = (v: unknown) => (typeof v === "string" ? isoSeconds(v) : NaN);
  const out: Partial<Segment> = {
    codec: typeof j.codec === "string" ? j.codec : null,
    width: num(j.width),
    height: num(j.height),
    frameCount: num(j.frame_count),
  };
  if (typeof j.sensor_name === "string") out.sensor = j.sensor_name;
  const start = time(j.start);
  const end = time(j.end);
  const ts = Array.isArray(j.capture_timestamps)
    ? j.capture_timestamps.filter((t) => typeof t === "number")
    : [];
  if (Number.isFinite(start)) out.start = start;
  else if (ts.length > 0) out.start = ts[0];
  if (Number.isFinite(end)) out.end = end;
  else if (ts.length > 0) out.end = ts[ts.length - 1];
  return out;
}

/** Epoch seconds of an ISO 8601 time, microseconds kept (`Date.parse` stops at milliseconds). */
export function isoSeconds(iso: string): number {
  const m = /^([^.]*)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  if (!m) return Date.parse(iso) / 1000;
  return Date.parse(m[1] + m[3]) / 1000 + (m[2] ? Number("0" + m[2]) : 0);
}

/** How long one scan is reused (many open pages poll it). */
export const SCAN_TTL_MS = 2000;

/**
 * Lists the segments of some directories. The dumper's files are complete once their name appears (written under
 * a temporary name, then renamed) and never change after, so each `.mp4` is stat'ed once and each `.json` read
 * once; a scan is then one directory read, reused for {@linkcode SCAN_TTL_MS}.
 */
export class RecordingsIndex {
  #sizes = new Map<string, number>();
  #facts = new Map<string, Partial<Segment> | undefined>();
  #last?: { at: number; segments: Segment[] };
  #scanning?: Promise<Segment[]>;

  constructor(readonly dirs: readonly string[]) {}

  /** Every segment of every directory, newest first; a missing directory has none. */
  list(): Promise<Segment[]> {
    if (this.#last && Date.now() - this.#last.at < SCAN_TTL_MS) return Promise.resolve(this.#last.segments);
    this.#scanning ??= this.#scan().then((segments) => {
      this.#last = { at: Date.now(), segments };
      return segments;
    }).finally(() => (this.#scanning = undefined));
    return this.#scanning;
  }

  async #scan(): Promise<Segment[]> {
    const out: Segment[] = [];
    const liveSizes = new Map<string, number>();
    const liveFacts = new Map<string, Partial<Segment> | undefined>();
    for (let d = 0; d < this.dirs.length; d++) {
      const dir = this.dirs[d];
      const files = new Map<string, { mp4?: number; json: boolean }>();
      let n = 0;
      try {
        for await (const e of Deno.readDir(dir)) {
          if (++n > MAX_FILES) break;
          if (!e.isFile || e.name.startsWith(".")) continue;
          const m = /^(.+)\.(mp4|json)$/.exec(e.name);
          if (!m) continue;
          const f = files.get(m[1]) ?? { json: false };
          if (m[2] === "json") f.json = true;
          else {
            const key = `${d}/${e.name}`;
            let size = this.#sizes.get(key);
            if (size === undefined) {
              // Deleted by retention between the listing and now: skip it.
              size = (await Deno.stat(`${dir}/${e.name}`).catch(() => null))?.size;
              if (size === undefined) continue;
            }
            liveSizes.set(key, size);
            f.mp4 = size;
          }
          files.set(m[1], f);
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      for (const [stem, f] of files) {
        if (f.mp4 === undefined) continue;
        const fromName = parseStem(stem);
        let facts: Partial<Segment> | undefined;
        let hasJson = f.json;
        if (hasJson) {
          const key = `${d}/${stem}`;
          if (this.#facts.has(key)) facts = this.#facts.get(key);
          else {
            const text = await Deno.readTextFile(`${dir}/${stem}.json`).catch(() => undefined);
            // Unreadable (deleted meanwhile): listed from its name now, read again next scan.
            if (text === undefined) hasJson = false;
            else facts = segmentFacts(text);
          }
          if (hasJson) liveFacts.set(key, facts);
        }
        const start = facts?.start ?? fromName?.start;
        if (start === undefined) continue; // neither a dumper name nor a readable .json: not a segment
        out.push({
          id: `${d}/${stem}`,
          dir: d,
          stem,
          sensor: facts?.sensor ?? fromName?.sensor ?? stem,
          start,
          end: facts?.end ?? start,
          codec: facts?.codec ?? null,
          width: facts?.width ?? null,
          height: facts?.height ?? null,
          frameCount: facts?.frameCount ?? null,
          bytes: f.mp4,
          hasJson,
          video: fileUrl(d, `${stem}.mp4`),
          meta: hasJson ? fileUrl(d, `${stem}.json`) : null,
        });
      }
    }
    // Forget what retention deleted.
    this.#sizes = liveSizes;
    this.#facts = liveFacts;
    return out.sort((a, b) => b.start - a.start);
  }
}
