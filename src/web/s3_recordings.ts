/**
 * The recordings the pusher uploaded, browsed read-only: the keys `<prefix>/<device>/<sensor>/<date>/<hour>/<stem>`
 * `.mp4|.json` under `--prefix` of `--s3-bucket` (listed at most every {@linkcode LIST_TTL_MS}, up to
 * {@linkcode MAX_KEYS} keys), each segment's facts from its `.json` (fetched once per ETag, newest
 * {@linkcode MAX_FACTS} only; older ones are listed from their names), and the files streamed through the console
 * with HTTP Range, so the browser never needs S3 credentials. Credentials and endpoint come from the AWS SDK's
 * standard chain, as for the pusher.
 *
 * @example
 * ```ts
 * import { S3Recordings } from "./s3_recordings.ts";
 * const s3 = S3Recordings.open({ bucket: "videos", prefix: "tutorial", endpointUrl: "http://127.0.0.1:7480" });
 * const segments = await s3.list();
 * s3.close();
 * ```
 * @module
 */

import { GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { normalizePrefix } from "../sinks/naming.ts";
import { resolveDefaultRegion } from "../sinks/s3_uploader.ts";
import { rangedReply } from "./range.ts";
import { parseStem, type Segment, segmentFacts } from "./recordings.ts";
import { isPlainRelativePath } from "./safe_path.ts";

/** Most keys read per listing. */
export const MAX_KEYS = 20_000;
/** How long a listing is reused. */
export const LIST_TTL_MS = 10_000;
/** Newest segments whose `.json` is fetched for its facts. */
export const MAX_FACTS = 300;

/** Where the bucket is and how to reach it. */
export interface S3Location {
  bucket: string;
  prefix: string;
  region?: string;
  endpointUrl?: string;
  forcePathStyle?: boolean;
}

interface Listed {
  key: string;
  size: number;
  etag: string;
}

/** The console's URL of an S3 key. */
export function s3Url(key: string): string {
  return "/s3/" + key.split("/").map(encodeURIComponent).join("/");
}

/** Segments in one bucket under one prefix. */
export class S3Recordings {
  #listed?: { at: number; segments: Segment[]; sizes: Map<string, number> };
  #listing?: Promise<void>;
  #facts = new Map<string, { etag: string; facts: Partial<Segment> | undefined }>();
  readonly prefix: string;

  private constructor(readonly client: S3Client, readonly bucket: string, prefix: string) {
    this.prefix = normalizePrefix(prefix);
  }

  /** A client for the location (nothing is sent yet). */
  static open(loc: S3Location): S3Recordings {
    const config: S3ClientConfig = {
      forcePathStyle: loc.forcePathStyle || loc.endpointUrl !== undefined,
      maxAttempts: 2,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: { connectionTimeout: 5000, requestTimeout: 30_000 },
    };
    // As the pusher: the SDK's chain, else MSight's us-east-1, so the console finds what the pusher uploaded.
    config.region = loc.region ?? resolveDefaultRegion;
    if (loc.endpointUrl) config.endpoint = loc.endpointUrl;
    return new S3Recordings(new S3Client(config), loc.bucket, loc.prefix);
  }

  /** `s3://bucket/prefix`, for log lines. */
  get target(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  /** True when `key` may be served: under the prefix, plain components, an `.mp4` or `.json`. */
  allows(key: string): boolean {
    const rest = this.prefix === ""
      ? key
      : key.startsWith(this.prefix + "/")
      ? key.slice(this.prefix.length + 1)
      : "";
    return isPlainRelativePath(rest) && /\.(mp4|json)$/.test(rest);
  }

  /** The segments, newest first (a listing at most {@linkcode LIST_TTL_MS} old). */
  async list(): Promise<Segment[]> {
    if (!this.#listed || Date.now() - this.#listed.at > LIST_TTL_MS) {
      this.#listing ??= this.#relist().finally(() => (this.#listing = undefined));
      await this.#listing;
    }
    return this.#listed!.segments;
  }

  async #relist(): Promise<void> {
    const objects: Listed[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix === "" ? undefined : this.prefix + "/",
          ContinuationToken: token,
        }),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key) objects.push({ key: o.Key, size: o.Size ?? 0, etag: o.ETag ?? "" });
      }
      token = out.IsTruncated && objects.length < MAX_KEYS ? out.NextContinuationToken : undefined;
    } while (token);
    const byStem = new Map<string, { mp4?: Listed; json?: Listed }>();
    const sizes = new Map<string, number>();
    for (const o of objects) {
      const m = /^(.+)\.(mp4|json)$/.exec(o.key);
      if (!m || !this.allows(o.key)) continue;
      sizes.set(o.key, o.size);
      const e = byStem.get(m[1]) ?? {};
      if (m[2] === "mp4") e.mp4 = o;
      else e.json = o;
      byStem.set(m[1], e);
    }
    const rows: { base: string; mp4: Listed; json?: Listed; start: number; sensor: string }[] = [];
    for (const [base, e] of byStem) {
      if (!e.mp4) continue;
      const named = parseStem(base.slice(base.lastIndexOf("/") + 1));
      if (!named) continue;
      rows.push({ base, mp4: e.mp4, json: e.json, ...named });
    }
    rows.sort((a, b) => b.start - a.start);
    const want = rows.slice(0, MAX_FACTS).filter((r) =>
      r.json && this.#facts.get(r.json.key)?.etag !== r.json.etag
    );
    for (let i = 0; i < want.length; i += 8) {
      await Promise.all(
        want.slice(i, i + 8).map(async (r) => {
          const json = r.json!;
          const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: json.key }));
          const text = await out.Body?.transformToString() ?? "";
          this.#facts.set(json.key, { etag: json.etag, facts: segmentFacts(text) });
        }),
      );
    }
    const segments = rows.map((r): Segment => {
      const facts = r.json ? this.#facts.get(r.json.key)?.facts : undefined;
      return {
        id: `s3/${r.base}`,
        dir: -1,
        stem: r.base.slice(r.base.lastIndexOf("/") + 1),
        sensor: facts?.sensor ?? r.sensor,
        start: facts?.start ?? r.start,
        end: facts?.end ?? r.start,
        codec: facts?.codec ?? null,
        width: facts?.width ?? null,
        height: facts?.height ?? null,
        frameCount: facts?.frameCount ?? null,
        bytes: r.mp4.size,
        hasJson: r.json !== undefined,
        video: s3Url(r.mp4.key),
        meta: r.json ? s3Url(r.json.key) : null,
      };
    });
    this.#listed = { at: Date.now(), segments, sizes };
  }

  /** Streams one listed object with Range; 404 for anything not listed under the prefix. */
  async serve(req: Request, key: string, download: boolean): Promise<Response> {
    if (!this.allows(key)) return new Response("no such recording\n", { status: 404 });
    await this.list();
    let size = this.#listed!.sizes.get(key);
    if (size === undefined) {
      // Uploaded since the last listing: list again once.
      this.#listed = undefined;
      await this.list();
      size = this.#listed!.sizes.get(key);
      if (size === undefined) return new Response("no such recording\n", { status: 404 });
    }
    const reply = rangedReply(req, key.slice(key.lastIndexOf("/") + 1), size, download);
    if (reply instanceof Response) return reply;
    const { status, headers, start, length } = reply;
    if (req.method === "HEAD" || length === 0) return new Response(null, { status, headers });
    let out;
    try {
      out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=${start}-${start + length - 1}`,
        }),
      );
    } catch (err) {
      const name = (err as Error).name;
      if (name === "NoSuchKey") return new Response("no such recording (deleted)\n", { status: 404 });
      if (name === "InvalidRange") {
        return new Response("range outside the object\n", { status: 416, headers });
      }
      return new Response(`S3 did not answer: ${(err as Error).message}\n`, { status: 502 });
    }
    if (!out.Body) return new Response("the object has no body\n", { status: 404 });
    return new Response(out.Body.transformToWebStream() as ReadableStream<Uint8Array>, { status, headers });
  }

  /** Closes the client's sockets. */
  close(): void {
    this.client.destroy();
  }
}
