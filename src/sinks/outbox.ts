/**
 * The S3 pusher's durable outbox: a segment is spooled to disk atomically before it is acknowledged, uploaded
 * oldest first with retries, and deleted once stored; bounded by `spoolMaxBytes` (when full the oldest
 * waiting segment is dropped, logged and counted); a restart resumes in the same order. Layout and rationale:
 * docs/design.md, "Sinks".
 *
 * @example
 * ```ts
 * import { Outbox } from "./outbox.ts";
 * import { S3Uploader } from "./s3_uploader.ts";
 * import { Logger } from "../runtime/log.ts";
 * import { Metrics } from "../runtime/metrics.ts";
 * const log = new Logger({ device: "edge-1", node: "video_pusher" });
 * const uploader = new S3Uploader({ bucket: "b" }, log);
 * const outbox = await Outbox.open({
 *   spoolDir: "/var/spool/msight", spoolMaxBytes: 2 ** 30, prefix: "msight_tutorial", uploader, log, metrics: new Metrics(),
 * });
 * declare const seg: import("../bus/message.ts").VideoData;
 * await outbox.enqueue(seg); // durable now: ack the stream entry
 * await outbox.close();
 * uploader.close();
 * ```
 * @module
 */

import type { VideoData } from "../bus/message.ts";
import { Backoff, delay } from "../runtime/async.ts";
import { errorMessage } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { type Counter, type Histogram, Metrics } from "../runtime/metrics.ts";
import { cleanupTempFiles, ensureWritableDir, syncDir, writeFileAtomic } from "./atomic_file.ts";
import { mediaFacts, segmentMetadataJson, sha256Hex } from "./metadata.ts";
import { s3Keys } from "./naming.ts";
import { classifyS3Error, type UploadJob } from "./s3_uploader.ts";

/** What the outbox needs of an uploader ({@linkcode S3Uploader} fits). Must throw on failure. */
export interface SegmentUploader {
  uploadSegment(job: UploadJob, signal?: AbortSignal): Promise<unknown>;
}

/** Configuration of an {@linkcode Outbox}. */
export interface OutboxOptions {
  /** `--spool-dir`; created if missing. */
  spoolDir: string;
  /** `--spool-max-bytes`: bound on the spooled segments' bytes. */
  spoolMaxBytes: number;
  /** S3 key prefix (`--prefix`). */
  prefix: string;
  uploader: SegmentUploader;
  log: Logger;
  metrics?: Metrics;
  /** First retry delay (default 1 s); doubles per failure, ±20 % jitter so many pushers do not retry in step. */
  initialBackoffMs?: number;
  /** Longest retry delay (default 60 s). */
  maxBackoffMs?: number;
  /** Start the upload worker (default true); false only to inspect a spool. */
  startWorker?: boolean;
}

/** What {@linkcode Outbox.enqueue} did with a segment. */
export interface EnqueueResult {
  /**
   * `queued`: durably in the spool. `duplicate`: the same segment is already spooled. `dropped`: it can never fit
   * (larger than the whole spool); counted and logged. In every case the message may be acknowledged.
   */
  status: "queued" | "duplicate" | "dropped";
  videoKey: string;
}

/** Why a segment left the outbox without being uploaded (the `reason` label of the drop counter). */
export type DropReason = "spool_full" | "too_large" | "rejected" | "corrupt";

/** One spooled segment, as stored in `<seq>.entry.json`. */
interface EntryRecord {
  version: 1;
  seq: number;
  videoKey: string;
  metadataKey: string;
  /** The segment `.json` to upload, as text (bigint ids with every digit). */
  metadataJson: string;
  sha256: string;
  byteSize: number;
  /** Decimal text: above 2^53. */
  frameId: string;
  enqueuedAtMs: number;
}

interface Entry extends EntryRecord {
  /** Bytes on disk: the `.mp4` plus the entry file. */
  diskBytes: number;
}

const SEQ_WIDTH = 16;
const ENTRY_SUFFIX = ".entry.json";
const encoder = new TextEncoder();

function seqName(seq: number): string {
  return String(seq).padStart(SEQ_WIDTH, "0");
}

function isEntryRecord(v: unknown): v is EntryRecord {
  const r = v as Partial<EntryRecord> | null;
  return typeof r === "object" && r !== null && r.version === 1 && typeof r.seq === "number" &&
    typeof r.videoKey === "string" && typeof r.metadataKey === "string" &&
    typeof r.metadataJson === "string" &&
    typeof r.sha256 === "string" && typeof r.byteSize === "number" && typeof r.frameId === "string" &&
    typeof r.enqueuedAtMs === "number";
}

/** A durable, bounded upload queue on disk with one upload worker. */
export class Outbox {
  readonly spoolDir: string;
  #opts: OutboxOptions;
  #log: Logger;
  #entries: Entry[] = [];
  #nextSeq = 1;
  #inFlight: Entry | null = null;
  #closed = false;
  #closing = false;
  #abort = new AbortController();
  #wake: (() => void) | null = null;
  #worker: Promise<void> = Promise.resolve();
  #chain: Promise<unknown> = Promise.resolve();
  #idleWaiters: (() => void)[] = [];
  #queued: Counter;
  #duplicates: Counter;
  #uploaded: Counter;
  #retried: Counter;
  #dropped: Counter;
  #uploadSeconds: Histogram;
  #deliverySeconds: Histogram;

  private constructor(opts: OutboxOptions) {
    this.spoolDir = opts.spoolDir.replace(/\/+$/, "") || "/";
    this.#opts = opts;
    this.#log = opts.log;
    const m = opts.metrics ?? new Metrics();
    this.#queued = m.counter("outbox_segments_queued_total", "Segments received and written to the outbox");
    this.#duplicates = m.counter(
      "outbox_segments_duplicate_total",
      "Segments received again while still spooled",
    );
    this.#uploaded = m.counter("outbox_segments_uploaded_total", "Segments uploaded (video and metadata)");
    this.#retried = m.counter("outbox_upload_retries_total", "Failed upload attempts that will be retried");
    this.#dropped = m.counter("outbox_segments_dropped_total", "Segments dropped without upload, by reason");
    m.gauge("outbox_depth", "Segments waiting in the outbox", () => this.depth);
    m.gauge("outbox_bytes", "Bytes of the segments waiting in the outbox", () => this.bytes);
    m.gauge("outbox_oldest_age_seconds", "Age of the oldest segment in the outbox", () => this.oldestAgeS);
    const buckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600];
    this.#uploadSeconds = m.histogram(
      "outbox_upload_seconds",
      "Duration of successful segment uploads",
      buckets,
    );
    this.#deliverySeconds = m.histogram("outbox_delivery_seconds", "From enqueue to uploaded", buckets);
  }

  /**
   * Opens (creating if missing) the spool, removes what interrupted writes left, loads the waiting entries in order
   * and starts the upload worker. A spool directory that cannot be written is a `FatalError`.
   *
   * @example
   * ```ts
   * import { Outbox } from "./outbox.ts";
   * declare const opts: import("./outbox.ts").OutboxOptions;
   * const outbox = await Outbox.open(opts);
   * ```
   */
  static async open(opts: OutboxOptions): Promise<Outbox> {
    const ob = new Outbox(opts);
    await ensureWritableDir(
      ob.spoolDir,
      "spool directory",
      "bin/msight-launch grants exactly --spool-dir; a compiled pusher only the directory it was compiled with",
    );
    await Deno.mkdir(`${ob.spoolDir}/failed`, { recursive: true });
    await cleanupTempFiles(ob.spoolDir, opts.log);
    await ob.#scan();
    if (ob.#entries.length > 0) {
      opts.log.info(`outbox resumes with ${ob.#entries.length} segment(s) to upload`, {
        bytes: ob.bytes,
        oldest_age_s: Math.round(ob.oldestAgeS),
      });
    }
    if (opts.startWorker ?? true) ob.#worker = ob.#run();
    return ob;
  }

  /** Segments waiting (including the one being uploaded). */
  get depth(): number {
    return this.#entries.length;
  }

  /** Bytes the waiting segments take in the spool. */
  get bytes(): number {
    let s = 0;
    for (const e of this.#entries) s += e.diskBytes;
    return s;
  }

  /** Seconds since the oldest waiting segment was enqueued; 0 when empty. */
  get oldestAgeS(): number {
    return this.#entries.length > 0 ? (Date.now() - this.#entries[0].enqueuedAtMs) / 1000 : 0;
  }

  /** Object keys of the waiting segments' videos, oldest first. */
  pendingKeys(): string[] {
    return this.#entries.map((e) => e.videoKey);
  }

  async #scan(): Promise<void> {
    const entryFiles: string[] = [];
    const videos = new Set<string>();
    for await (const e of Deno.readDir(this.spoolDir)) {
      if (!e.isFile) continue;
      if (e.name.endsWith(ENTRY_SUFFIX)) entryFiles.push(e.name);
      else if (/^\d+\.mp4$/.test(e.name)) videos.add(e.name);
    }
    for (const name of entryFiles) {
      const base = name.slice(0, -ENTRY_SUFFIX.length);
      const path = `${this.spoolDir}/${name}`;
      let rec: unknown;
      let size = 0;
      let videoSize = -1;
      try {
        const text = await Deno.readTextFile(path);
        size = encoder.encode(text).byteLength;
        rec = JSON.parse(text);
        videoSize = (await Deno.stat(`${this.spoolDir}/${base}.mp4`)).size;
      } catch {
        // Unreadable or torn entry: handled as invalid just below (logged there).
        rec = null;
      }
      if (!isEntryRecord(rec) || videoSize !== rec.byteSize) {
        this.#log.error(`outbox entry ${name} is damaged or its video is missing; dropped`);
        this.#dropped.inc(1, { reason: "corrupt" });
        await this.#removeFiles(`${this.spoolDir}/${base}`);
        videos.delete(`${base}.mp4`);
        continue;
      }
      videos.delete(`${base}.mp4`);
      this.#entries.push({ ...rec, diskBytes: rec.byteSize + size });
    }
    // A video without its entry is an enqueue that never completed (and was never acknowledged): redelivered.
    // Best effort: a file that cannot be removed now is swept again at the next start.
    for (const v of videos) await Deno.remove(`${this.spoolDir}/${v}`).catch(() => {});
    this.#entries.sort((a, b) => a.seq - b.seq);
    this.#nextSeq = this.#entries.length > 0 ? this.#entries[this.#entries.length - 1].seq + 1 : 1;
  }

  /**
   * Writes a segment durably into the spool (dropping the oldest waiting ones if it would not fit) and resolves
   * when it is on disk; the caller acknowledges the bus message then. Calls are serialised in arrival order.
   *
   * @example
   * ```ts
   * declare const outbox: import("./outbox.ts").Outbox;
   * declare const seg: import("../bus/message.ts").VideoData;
   * const { status } = await outbox.enqueue(seg);
   * ```
   */
  enqueue(seg: VideoData): Promise<EnqueueResult> {
    if (this.#closing) return Promise.reject(new Error("outbox is closed"));
    const p = this.#chain.then(() => this.#enqueue(seg));
    // The error reaches the caller through `p`; the chain only orders the next enqueue after this one.
    this.#chain = p.catch(() => {});
    return p;
  }

  async #enqueue(seg: VideoData): Promise<EnqueueResult> {
    if (this.#closed) throw new Error("outbox is closed");
    const sha256 = sha256Hex(seg.video);
    let keys = s3Keys(seg, this.#opts.prefix);
    const same = this.#entries.find((e) => e.videoKey === keys.video);
    if (same && same.frameId === String(seg.frameId) && same.sha256 === sha256) {
      this.#duplicates.inc();
      return { status: "duplicate", videoKey: keys.video };
    }
    if (same && same.frameId !== String(seg.frameId)) {
      // Two segments with the same sensor and first-frame time: keep both, under distinct names.
      const video = keys.video.replace(/\.mp4$/, `_${seg.frameId}.mp4`);
      keys = { ...keys, video, metadata: video.replace(/\.mp4$/, ".json") };
    }
    const rec: EntryRecord = {
      version: 1,
      seq: this.#nextSeq++,
      videoKey: keys.video,
      metadataKey: keys.metadata,
      metadataJson: segmentMetadataJson(seg, {
        byteSize: seg.video.byteLength,
        sha256,
        media: await mediaFacts(seg, this.#log),
      }),
      sha256,
      byteSize: seg.video.byteLength,
      frameId: String(seg.frameId),
      enqueuedAtMs: Date.now(),
    };
    const recText = JSON.stringify(rec) + "\n";
    const diskBytes = seg.video.byteLength + encoder.encode(recText).byteLength;
    if (diskBytes > this.#opts.spoolMaxBytes) {
      this.#dropped.inc(1, { reason: "too_large" });
      this.#log.error(`segment ${keys.video} (${diskBytes} bytes) is larger than the whole spool; dropped`, {
        spool_max_bytes: this.#opts.spoolMaxBytes,
      });
      return { status: "dropped", videoKey: keys.video };
    }
    this.#makeRoom(diskBytes);
    const base = `${this.spoolDir}/${seqName(rec.seq)}`;
    await writeFileAtomic(`${base}.mp4`, seg.video, { skipDirSync: true });
    await writeFileAtomic(`${base}${ENTRY_SUFFIX}`, recText);
    this.#entries.push({ ...rec, diskBytes });
    this.#queued.inc();
    this.#wake?.();
    return { status: "queued", videoKey: keys.video };
  }

  /** Drops the oldest waiting entries (never the one being uploaded) until `incoming` more bytes fit. */
  #makeRoom(incoming: number): void {
    let total = this.bytes;
    while (total + incoming > this.#opts.spoolMaxBytes) {
      const victim = this.#entries.find((e) => e !== this.#inFlight);
      if (!victim) break;
      total -= victim.diskBytes;
      this.#forget(victim);
      this.#dropped.inc(1, { reason: "spool_full" });
      this.#log.warn(`outbox full: dropped oldest segment ${victim.videoKey}`, {
        age_s: Math.round((Date.now() - victim.enqueuedAtMs) / 1000),
        bytes: victim.diskBytes,
        spool_max_bytes: this.#opts.spoolMaxBytes,
      });
      // Deleting files is not awaited: the entry is already gone from the queue, and a leftover is swept on start.
      this.#removeFiles(`${this.spoolDir}/${seqName(victim.seq)}`).catch(() => {}); // swept on start
    }
  }

  #forget(e: Entry): void {
    const i = this.#entries.indexOf(e);
    if (i >= 0) this.#entries.splice(i, 1);
    if (this.#entries.length === 0) this.#notifyIdle();
  }

  async #removeFiles(base: string): Promise<void> {
    // The entry goes first: a crash between leaves a bare video, which the next scan removes.
    for (const p of [`${base}${ENTRY_SUFFIX}`, `${base}.mp4`]) {
      await Deno.remove(p).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  }

  async #run(): Promise<void> {
    const backoff = new Backoff({
      initial: this.#opts.initialBackoffMs ?? 1000,
      max: this.#opts.maxBackoffMs ?? 60000,
    });
    while (!this.#closed) {
      const e = this.#entries[0];
      if (!e) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
        continue;
      }
      this.#inFlight = e;
      const started = performance.now();
      const base = `${this.spoolDir}/${seqName(e.seq)}`;
      try {
        await this.#opts.uploader.uploadSegment({
          videoPath: `${base}.mp4`,
          videoKey: e.videoKey,
          metadataKey: e.metadataKey,
          metadataJson: e.metadataJson,
          sha256: e.sha256,
          byteSize: e.byteSize,
        }, this.#abort.signal);
        this.#inFlight = null;
        this.#uploadSeconds.observe((performance.now() - started) / 1000);
        this.#deliverySeconds.observe((Date.now() - e.enqueuedAtMs) / 1000);
        this.#uploaded.inc();
        if (backoff.failures > 0) {
          this.#log.info(`uploads resumed after ${backoff.failures} failed attempt(s)`);
        }
        backoff.reset();
        this.#forget(e);
        await this.#removeFiles(base).catch((err) =>
          this.#log.warn(`could not remove uploaded ${base}.mp4: ${errorMessage(err)}`)
        );
        this.#log.debug(`uploaded ${e.videoKey}`);
      } catch (err) {
        this.#inFlight = null;
        if (this.#closed) break;
        const c = classifyS3Error(err);
        if (c.kind === "permanent") {
          await this.#quarantine(e, base, errorMessage(err));
          continue;
        }
        this.#retried.inc();
        // A misconfiguration will not clear soon: wait the longest delay at once.
        const wait = c.kind === "config" ? backoff.atCap() : backoff.next();
        const log = c.kind === "config" ? this.#log.error.bind(this.#log) : this.#log.warn.bind(this.#log);
        log(`upload of ${e.videoKey} failed; retrying in ${(wait / 1000).toFixed(1)} s`, {
          attempt: backoff.failures,
          depth: this.depth,
          error: errorMessage(err),
        });
        await delay(wait, this.#abort.signal);
      }
    }
  }

  async #quarantine(e: Entry, base: string, why: string): Promise<void> {
    this.#forget(e);
    this.#dropped.inc(1, { reason: "rejected" });
    const dest = `${this.spoolDir}/failed/${seqName(e.seq)}`;
    this.#log.error(`S3 rejected ${e.videoKey} for good; kept in ${dest}.mp4`, { error: why });
    try {
      await Deno.rename(`${base}.mp4`, `${dest}.mp4`);
      await Deno.rename(`${base}${ENTRY_SUFFIX}`, `${dest}${ENTRY_SUFFIX}`);
      await syncDir(this.spoolDir);
    } catch (err) {
      this.#log.warn(`could not move ${base} to failed/: ${errorMessage(err)}`);
      // Already logged above; a leftover is swept on the next start.
      await this.#removeFiles(base).catch(() => {});
    }
  }

  #notifyIdle(): void {
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /**
   * Resolves true once the outbox is empty, or false after `timeoutMs`.
   *
   * @example
   * ```ts
   * declare const outbox: import("./outbox.ts").Outbox;
   * const empty = await outbox.drain(30_000);
   * ```
   */
  async drain(timeoutMs: number): Promise<boolean> {
    await this.#chain;
    if (this.#entries.length === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let waiter: (() => void) | undefined;
    const emptied = new Promise<boolean>((resolve) => {
      waiter = () => resolve(this.#entries.length === 0);
      this.#idleWaiters.push(waiter);
    });
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([emptied, timedOut]);
    } finally {
      clearTimeout(timer);
      this.#idleWaiters = this.#idleWaiters.filter((w) => w !== waiter);
    }
  }

  /**
   * Stops taking segments, lets pending enqueues finish, aborts the upload in progress (its segment stays spooled
   * and is uploaded again after a restart) and waits for the worker to end.
   *
   * @example
   * ```ts
   * declare const outbox: import("./outbox.ts").Outbox;
   * await outbox.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closing) return await this.#worker;
    this.#closing = true;
    await this.#chain;
    this.#closed = true;
    this.#abort.abort();
    this.#wake?.();
    await this.#worker;
    this.#notifyIdle();
  }
}
