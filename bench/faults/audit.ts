/**
 * What the fault suite checks on the sinks' side: the segments the dumper saved and the objects the pusher
 * uploaded, compared segment by segment (stems), each S3 video's SHA-256 against its `.json`, each video decoded
 * by `ffprobe`, and every frame id counted across segments (a segment uploaded twice under two keys would repeat
 * them).
 *
 * @example
 * ```ts
 * import type { S3TestServer } from "../../test/helpers/s3_server.ts";
 * import { auditS3, dumperStems, s3Client } from "./audit.ts";
 * declare const s3: S3TestServer;
 * const local = await dumperStems("/tmp/videos");
 * const report = await auditS3(s3Client(s3), "msight-faults", "faults");
 * console.log(report.corrupt.length, local.size);
 * ```
 * @module
 */

import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import type { S3TestServer } from "../../test/helpers/s3_server.ts";
import { probeMp4 } from "../../test/helpers/ffprobe.ts";

/** An S3 object's key and ETag. */
export interface S3Object {
  key: string;
  etag: string;
  size: number;
}

/** Result of {@linkcode auditS3}. */
export interface S3Audit {
  /** Stems with both `.mp4` and `.json`. */
  stems: Set<string>;
  keys: string[];
  /** Stems with only one of the two objects. */
  incomplete: string[];
  /** Stems whose video does not match its `.json` (hash, or ffprobe's frame count) or does not decode. */
  corrupt: string[];
  /** Frame ids found in more than one segment. */
  repeatedFrameIds: number;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * An S3 client for the test gateway.
 *
 * @example
 * ```ts
 * import { startS3Server } from "../../test/helpers/s3_server.ts";
 * const client = s3Client(await startS3Server());
 * ```
 */
export function s3Client(s3: S3TestServer): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 2,
  });
}

/**
 * Every object under `prefix/`, paged.
 *
 * @example
 * ```ts
 * import type { S3Client } from "@aws-sdk/client-s3";
 * declare const client: S3Client;
 * const objects = await listObjects(client, "bucket", "faults/");
 * ```
 */
export async function listObjects(client: S3Client, bucket: string, prefix: string): Promise<S3Object[]> {
  const out: S3Object[] = [];
  let token: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const res = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of res.Contents ?? []) out.push({ key: o.Key!, etag: o.ETag ?? "", size: o.Size ?? 0 });
    if (!res.IsTruncated) break;
    token = res.NextContinuationToken;
  }
  return out;
}

async function getBytes(client: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return await res.Body!.transformToByteArray();
}

/**
 * The stem of a segment file or key (`.../cam_20260124_162845_649586.json` → `cam_20260124_162845_649586`).
 *
 * @example
 * ```ts
 * stemOf("faults/dev/cam/2026-01-24/16/cam_20260124_162845_649586.json"); // "cam_20260124_162845_649586"
 * ```
 */
export function stemOf(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1).replace(/\.(mp4|json)$/, "");
}

/**
 * The frame ids of a segment `.json`, as text (they exceed 2^53).
 *
 * @example
 * ```ts
 * frameIdsOf('{"frame_ids": [7421057263124512769, 7421057263124512770]}'); // ["7421057263124512769", ...]
 * ```
 */
export function frameIdsOf(json: string): string[] {
  const m = /"frame_ids"\s*:\s*\[([^\]]*)\]/.exec(json);
  return m ? m[1].split(",").map((s) => s.trim()).filter(Boolean) : [];
}

/**
 * First and last capture time of a segment `.json` (NaN when absent).
 *
 * @example
 * ```ts
 * captureSpan('{"capture_timestamps": [1.5, 1.6, 1.7]}'); // { first: 1.5, last: 1.7, frames: 3 }
 * ```
 */
export function captureSpan(json: string): { first: number; last: number; frames: number } {
  const m = /"capture_timestamps"\s*:\s*\[([^\]]*)\]/.exec(json);
  const ts = m ? m[1].split(",").map(Number).filter(Number.isFinite) : [];
  return { first: ts[0] ?? NaN, last: ts.at(-1) ?? NaN, frames: ts.length };
}

/** A checked pair: sound or not, and its frame ids. */
interface Checked {
  ok: boolean;
  ids: string[];
}

/** Checked pairs by keys + ETags, so repeated audits only fetch what changed. */
const verified = new Map<string, Checked>();

/** Fetches and checks one segment's pair of objects: ok when the video is sound and matches its `.json`. */
async function checkPair(client: S3Client, bucket: string, mp4: S3Object, json: S3Object): Promise<Checked> {
  const cacheKey = `${mp4.key}|${mp4.etag}|${json.etag}`;
  const known = verified.get(cacheKey);
  if (known !== undefined) return known;
  let ok = false;
  let ids: string[] = [];
  try {
    const [video, meta] = await Promise.all([
      getBytes(client, bucket, mp4.key),
      getBytes(client, bucket, json.key).then((b) => new TextDecoder().decode(b)),
    ]);
    const want = /"sha256"\s*:\s*"([0-9a-f]{64})"/.exec(meta)?.[1];
    const frames = Number(/"frame_count"\s*:\s*(\d+)/.exec(meta)?.[1] ?? NaN);
    ids = frameIdsOf(meta);
    const probe = await probeMp4(video);
    ok = want === sha256(video) && probe.frames === frames && probe.codec === "h264";
  } catch {
    // Missing, unreadable or unparseable: reported as corrupt by the caller.
    ok = false;
  }
  const checked = { ok, ids };
  verified.set(cacheKey, checked);
  return checked;
}

/**
 * Lists and checks every segment under `prefix/` (see the module doc).
 *
 * @example
 * ```ts
 * import type { S3Client } from "@aws-sdk/client-s3";
 * declare const client: S3Client;
 * const a = await auditS3(client, "msight-faults", "faults");
 * console.log(a.stems.size, a.corrupt);
 * ```
 */
export async function auditS3(client: S3Client, bucket: string, prefix: string): Promise<S3Audit> {
  const objects = await listObjects(client, bucket, `${prefix}/`);
  const byStem = new Map<string, { mp4?: S3Object; json?: S3Object }>();
  for (const o of objects) {
    const s = stemOf(o.key);
    const e = byStem.get(s) ?? {};
    if (o.key.endsWith(".mp4")) e.mp4 = o;
    else if (o.key.endsWith(".json")) e.json = o;
    byStem.set(s, e);
  }
  const audit: S3Audit = {
    stems: new Set(),
    keys: objects.map((o) => o.key),
    incomplete: [],
    corrupt: [],
    repeatedFrameIds: 0,
  };
  const seen = new Set<string>();
  for (const [stem, { mp4, json }] of byStem) {
    if (!mp4 || !json) {
      audit.incomplete.push(stem);
      continue;
    }
    audit.stems.add(stem);
    const checked = await checkPair(client, bucket, mp4, json);
    if (!checked.ok) audit.corrupt.push(stem);
    for (const id of checked.ids) {
      if (seen.has(id)) audit.repeatedFrameIds++;
      seen.add(id);
    }
  }
  return audit;
}

/**
 * Stems of the complete segments (those with a `.json`) in the dumper's directory.
 *
 * @example
 * ```ts
 * const stems = await dumperStems("/tmp/videos");
 * ```
 */
export async function dumperStems(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".json")) out.add(stemOf(e.name));
  return out;
}

/**
 * `.json` texts of the dumper's complete segments, by stem.
 *
 * @example
 * ```ts
 * for (const [stem, json] of await dumperSegments("/tmp/videos")) console.log(stem, captureSpan(json));
 * ```
 */
export async function dumperSegments(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const stem of await dumperStems(dir)) {
    try {
      out.set(stem, await Deno.readTextFile(`${dir}/${stem}.json`));
    } catch {
      // Removed by retention meanwhile.
    }
  }
  return out;
}

/**
 * Every path under `dir` (relative), recursively.
 *
 * @example
 * ```ts
 * await walk("/tmp/videos"); // ["cam_20260124_162845_649586.json", ...]
 * ```
 */
export async function walk(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${rel}`)) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory) out.push(...await walk(dir, p));
  }
  return out;
}

/**
 * Total size of the regular files under `dir`, recursively (0 when it does not exist).
 *
 * @example
 * ```ts
 * const bytes = await dirBytes("/tmp/spool");
 * ```
 */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  try {
    for (const p of await walk(dir)) {
      const st = await Deno.stat(`${dir}/${p}`).catch(() => null); // removed meanwhile
      if (st?.isFile) total += st.size;
    }
  } catch {
    // The directory does not exist (yet): it holds nothing.
    return 0;
  }
  return total;
}
