/**
 * The recordings index: the segments (`<stem>.mp4` + `<stem>.json`) in the dumper directories the console browses,
 * newest first. A segment's facts come from its `.json` (sensor, start, end, codec, size), read once per file
 * version and cached; a `.mp4` without its `.json` (being written, or from elsewhere) is listed from its name
 * alone. Each directory is read flat, as the dumper writes it, and at most {@linkcode MAX_FILES} names per scan.
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

interface CacheEntry {
  mtime: number;
  facts: Partial<Segment> | undefined;
}

/** Lists the segments of some directories; keeps parsed `.json` facts between scans. */
export class RecordingsIndex {
  #cache = new Map<string, CacheEntry>();

  constructor(readonly dirs: readonly string[]) {}

  /** Every segment of every directory, newest first; a missing directory has none. */
  async list(): Promise<Segment[]> {
    const out: Segment[] = [];
    const live = new Set<string>();
    for (let d = 0; d < this.dirs.length; d++) {
      const files = new Map<string, { mp4?: number; json?: number; jsonMtime?: number }>();
      let n = 0;
      try {
        for await (const e of Deno.readDir(this.dirs[d])) {
          if (++n > MAX_FILES) break;
          if (!e.isFile || e.name.startsWith(".")) continue;
          const m = /^(.+)\.(mp4|json)$/.exec(e.name);
          if (!m) continue;
          const st = await Deno.stat(`${this.dirs[d]}/${e.name}`).catch(() => null);
          if (!st) continue; // deleted by retention between readDir and stat
          const f = files.get(m[1]) ?? {};
          if (m[2] === "mp4") f.mp4 = st.size;
          else {
            f.json = st.size;
            f.jsonMtime = st.mtime?.getTime() ?? 0;
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
        if (f.json !== undefined) {
          const key = `${d}/${stem}`;
          live.add(key);
          const cached = this.#cache.get(key);
          if (cached && cached.mtime === f.jsonMtime) facts = cached.facts;
          else {
            const text = await Deno.readTextFile(`${this.dirs[d]}/${stem}.json`).catch(() => "");
            facts = segmentFacts(text);
            this.#cache.set(key, { mtime: f.jsonMtime ?? 0, facts });
          }
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
          hasJson: f.json !== undefined,
          video: fileUrl(d, `${stem}.mp4`),
          meta: f.json !== undefined ? fileUrl(d, `${stem}.json`) : null,
        });
      }
    }
    for (const k of this.#cache.keys()) if (!live.has(k)) this.#cache.delete(k);
    return out.sort((a, b) => b.start - a.start);
  }
}
