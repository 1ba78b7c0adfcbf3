/**
 * The local dumper's writer: each segment becomes `<stem>.mp4` then `<stem>.json` in the save directory, each
 * written atomically; a `.json` marks a complete segment. Writes are idempotent (delivery is at least once): the
 * same segment again leaves the same two files and creates no other. Retention deletes the oldest segments by age,
 * total size and free space, and says so in the log.
 *
 * @example
 * ```ts
 * import { LocalStore } from "./local_store.ts";
 * import { Logger } from "../runtime/log.ts";
 * const log = new Logger({ device: "edge-1", node: "video_dumper" });
 * const store = await LocalStore.open({ saveDir: "./received_videos", log, maxAgeS: 7 * 86400 });
 * declare const seg: import("../bus/message.ts").VideoData;
 * const res = await store.write(seg); // res.status: "written" | "unchanged"
 * ```
 * @module
 */

import { statfs } from "node:fs/promises";
import type { VideoData } from "../bus/message.ts";
import type { Logger } from "../runtime/log.ts";
import type { Counter, Metrics } from "../runtime/metrics.ts";
import { cleanupTempFiles, ensureWritableDir, syncDir, writeFileAtomic } from "./atomic_file.ts";
import { mediaFacts, readFrameId, segmentMetadataJson, sha256Hex } from "./metadata.ts";
import { firstFrameTime, segmentStem, STEM_PATTERN, type TimeZoneMode } from "./naming.ts";

/** Configuration of a {@linkcode LocalStore}. */
export interface LocalStoreOptions {
  /** `--save-dir`; created (with parents) if missing. */
  saveDir: string;
  log: Logger;
  /** Clock of the file stems (default `utc`). */
  timezone?: TimeZoneMode;
  /** Delete segments whose files are older than this many seconds (by modification time). */
  maxAgeS?: number;
  /** Keep the segments' total size at or below this many bytes. */
  maxBytes?: number;
  /** Delete old segments while the file system has less than this many bytes free. */
  minFreeBytes?: number;
  metrics?: Metrics;
  /** Clock in epoch milliseconds; tests move it. */
  now?: () => number;
}

/** What {@linkcode LocalStore.write} did. */
export interface WriteResult {
  /** `unchanged`: the same segment was already there, complete; nothing was rewritten. */
  status: "written" | "unchanged";
  stem: string;
  videoPath: string;
  metadataPath: string;
  /** Paths retention deleted after this write. */
  deleted: string[];
}

/** Why retention deleted a segment. */
export type RetentionReason = "max_age" | "max_bytes" | "min_free";

/** One segment on disk, as retention sees it. */
interface StoredSegment {
  stem: string;
  bytes: number;
  /** Modification time, epoch ms. */
  mtimeMs: number;
  files: string[];
}

/**
 * Free bytes for unprivileged writers on the file system holding `dir`, or null where it cannot be read.
 *
 * @example
 * ```ts
 * import { freeBytes } from "./local_store.ts";
 * const free = await freeBytes("/data"); // e.g. 84795011072
 * ```
 */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    // No statfs here (or no permission): the caller warns once that --min-free-bytes is ignored.
    return null;
  }
}

function fileStemOf(name: string): { stem: string; ext: "mp4" | "json" } | null {
  const m = /^(.*)\.(mp4|json)$/.exec(name);
  if (!m || !STEM_PATTERN.test(m[1])) return null;
  return { stem: m[1], ext: m[2] as "mp4" | "json" };
}

/** The dumper's segment writer for one save directory. Calls must not overlap; the node awaits each. */
export class LocalStore {
  readonly saveDir: string;
  #opts: LocalStoreOptions;
  #log: Logger;
  #index = new Map<string, StoredSegment>();
  #warnedNoStatfs = false;
  #written?: Counter;
  #unchanged?: Counter;
  #deleted?: Counter;

  private constructor(opts: LocalStoreOptions) {
    this.saveDir = opts.saveDir.replace(/\/+$/, "") || "/";
    this.#opts = opts;
    this.#log = opts.log;
    const m = opts.metrics;
    if (m) {
      this.#written = m.counter("dumper_segments_written_total", "Segments written to the save directory");
      this.#unchanged = m.counter(
        "dumper_segments_duplicate_total",
        "Segments received again and already on disk",
      );
      this.#deleted = m.counter("dumper_retention_deleted_total", "Segments deleted by retention, by reason");
      m.gauge("dumper_stored_bytes", "Bytes of segments in the save directory", () => this.storedBytes);
      m.gauge("dumper_stored_segments", "Segments in the save directory", () => this.#index.size);
    }
  }

  /**
   * Creates the save directory if missing, proves it writable, removes temporary files left by a crash (logged),
   * and indexes the segments already there. An unusable directory is a `FatalError` naming it.
   *
   * @example
   * ```ts
   * import { LocalStore } from "./local_store.ts";
   * import { Logger } from "../runtime/log.ts";
   * const store = await LocalStore.open({ saveDir: "/data/videos", log: new Logger({ device: "d", node: "n" }) });
   * ```
   */
  static async open(opts: LocalStoreOptions): Promise<LocalStore> {
    const store = new LocalStore(opts);
    const dir = store.saveDir;
    await ensureWritableDir(
      dir,
      "save directory",
      "bin/msight-launch grants exactly --save-dir; a compiled dumper only the directory it was compiled with",
    );
    await cleanupTempFiles(dir, opts.log);
    await store.rescan();
    opts.log.info(`saving segments to ${dir}`, {
      segments: store.#index.size,
      bytes: store.storedBytes,
      timezone: opts.timezone ?? "utc",
    });
    return store;
  }

  /** Total bytes of the indexed segments. */
  get storedBytes(): number {
    let s = 0;
    for (const seg of this.#index.values()) s += seg.bytes;
    return s;
  }

  /** Rebuilds the index of segments from the directory (after files were added or removed by others). */
  async rescan(): Promise<void> {
    this.#index.clear();
    for await (const e of Deno.readDir(this.saveDir)) {
      if (!e.isFile) continue;
      const parsed = fileStemOf(e.name);
      if (!parsed) continue;
      try {
        const st = await Deno.stat(`${this.saveDir}/${e.name}`);
        this.#addFile(parsed.stem, e.name, st.size, st.mtime?.getTime() ?? 0);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }

  #addFile(stem: string, name: string, bytes: number, mtimeMs: number): void {
    const seg = this.#index.get(stem) ?? { stem, bytes: 0, mtimeMs: 0, files: [] };
    if (!seg.files.includes(name)) {
      seg.files.push(name);
      seg.bytes += bytes;
    }
    seg.mtimeMs = Math.max(seg.mtimeMs, mtimeMs);
    this.#index.set(stem, seg);
  }

  /**
   * Writes a segment (`.mp4`, then `.json`), unless the same segment is already there complete; then applies
   * retention, never deleting the segment just written.
   *
   * Two different segments whose stems coincide (same sensor and first-frame time, different `frame_id`) do not
   * overwrite each other: the later one gets `_<frame_id>` appended to its stem.
   *
   * @example
   * ```ts
   * declare const store: import("./local_store.ts").LocalStore;
   * declare const seg: import("../bus/message.ts").VideoData;
   * const { status, videoPath } = await store.write(seg);
   * ```
   */
  async write(seg: VideoData): Promise<WriteResult> {
    const sha256 = sha256Hex(seg.video);
    const base = segmentStem(seg.sensorName, firstFrameTime(seg).epochS, this.#opts.timezone ?? "utc");
    let stem = base;
    let existing = await this.#existing(stem);
    if (existing.frameId !== null && existing.frameId !== seg.frameId) {
      stem = `${base}_${seg.frameId}`;
      this.#log.warn(`another segment already uses ${base}; writing this one as ${stem}`);
      existing = await this.#existing(stem);
    }
    const videoPath = `${this.saveDir}/${stem}.mp4`;
    const metadataPath = `${this.saveDir}/${stem}.json`;
    if (
      existing.frameId === seg.frameId && existing.sha256 === sha256 &&
      existing.videoSize === seg.video.byteLength
    ) {
      this.#unchanged?.inc();
      this.#log.debug(`segment ${stem} already saved; not rewritten`);
      return { status: "unchanged", stem, videoPath, metadataPath, deleted: [] };
    }
    const json = segmentMetadataJson(seg, {
      byteSize: seg.video.byteLength,
      sha256,
      media: await mediaFacts(seg, this.#log),
    });
    // The .mp4 must be durable before the .json that declares it complete.
    await writeFileAtomic(videoPath, seg.video);
    await writeFileAtomic(metadataPath, json);
    const now = this.#now();
    this.#index.delete(stem);
    this.#addFile(stem, `${stem}.mp4`, seg.video.byteLength, now);
    this.#addFile(stem, `${stem}.json`, new TextEncoder().encode(json).byteLength, now);
    this.#written?.inc();
    const deleted = await this.enforceRetention(stem);
    return { status: "written", stem, videoPath, metadataPath, deleted };
  }

  async #existing(
    stem: string,
  ): Promise<{ frameId: bigint | null; sha256: string | null; videoSize: number }> {
    try {
      const text = await Deno.readTextFile(`${this.saveDir}/${stem}.json`);
      // A metadata file without its video reads as size -1, which never matches a redelivered segment.
      const st = await Deno.stat(`${this.saveDir}/${stem}.mp4`).catch(() => null);
      const sha = /"sha256"\s*:\s*"([0-9a-f]{64})"/.exec(text);
      return { frameId: readFrameId(text), sha256: sha ? sha[1] : null, videoSize: st?.size ?? -1 };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return { frameId: null, sha256: null, videoSize: -1 };
      throw err;
    }
  }

  #now(): number {
    return this.#opts.now ? this.#opts.now() : Date.now();
  }

  /**
   * Deletes the oldest segments (by modification time) that are older than `maxAgeS`, then while the total exceeds
   * `maxBytes`, then while free space is below `minFreeBytes`; `keep` (a stem) is never deleted. Each deletion is
   * logged with its reason; returns the deleted paths. Free space is read with `statfs`; where that is unavailable
   * the free-space rule is skipped with one warning.
   *
   * @example
   * ```ts
   * declare const store: import("./local_store.ts").LocalStore;
   * const deleted = await store.enforceRetention();
   * ```
   */
  async enforceRetention(keep?: string): Promise<string[]> {
    const { maxAgeS, maxBytes, minFreeBytes } = this.#opts;
    if (maxAgeS === undefined && maxBytes === undefined && minFreeBytes === undefined) return [];
    const oldestFirst = [...this.#index.values()]
      .filter((s) => s.stem !== keep)
      .sort((a, b) => a.mtimeMs - b.mtimeMs || (a.stem < b.stem ? -1 : 1));
    const deleted: string[] = [];
    let total = this.storedBytes;
    let i = 0;
    if (maxAgeS !== undefined) {
      const cutoff = this.#now() - maxAgeS * 1000;
      while (i < oldestFirst.length && oldestFirst[i].mtimeMs < cutoff) {
        total -= await this.#delete(oldestFirst[i++], "max_age", deleted);
      }
    }
    if (maxBytes !== undefined) {
      while (i < oldestFirst.length && total > maxBytes) {
        total -= await this.#delete(oldestFirst[i++], "max_bytes", deleted);
      }
      if (total > maxBytes) {
        this.#log.warn(`segments in ${this.saveDir} exceed max bytes`, { bytes: total, maxBytes });
      }
    }
    if (minFreeBytes !== undefined) {
      let free = await freeBytes(this.saveDir);
      if (free === null) {
        if (!this.#warnedNoStatfs) {
          this.#log.warn(`free space of ${this.saveDir} cannot be read; min free bytes ignored`);
        }
        this.#warnedNoStatfs = true;
      } else {
        // Deleted bytes are credited at once: the file system may report freed blocks late.
        while (i < oldestFirst.length && free < minFreeBytes) {
          free += await this.#delete(oldestFirst[i++], "min_free", deleted);
        }
        if (free < minFreeBytes) {
          this.#log.warn(`free space of ${this.saveDir} below min free bytes`, { free, minFreeBytes });
        }
      }
    }
    if (deleted.length > 0) await syncDir(this.saveDir);
    return deleted;
  }

  async #delete(seg: StoredSegment, reason: RetentionReason, deleted: string[]): Promise<number> {
    // The .json goes first so a crash midway leaves an incomplete segment, never a .json without its video.
    const files = [...seg.files].sort((a, b) =>
      (a.endsWith(".json") ? -1 : 0) - (b.endsWith(".json") ? -1 : 0)
    );
    for (const name of files) {
      const path = `${this.saveDir}/${name}`;
      try {
        await Deno.remove(path);
        deleted.push(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    this.#index.delete(seg.stem);
    this.#deleted?.inc(1, { reason });
    const ageS = Math.round((this.#now() - seg.mtimeMs) / 1000);
    this.#log.info(`retention deleted segment ${seg.stem}`, { reason, bytes: seg.bytes, age_s: ageS });
    return seg.bytes;
  }
}
