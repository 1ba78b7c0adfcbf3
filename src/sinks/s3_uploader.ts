/**
 * Uploads a segment's `.mp4` then its `.json` to S3 (or an S3-compatible store) with `@aws-sdk/client-s3`,
 * with `Content-MD5` on every request and `x-amz-meta-sha256` on every object; large files go up in parts,
 * and failed multipart uploads never leak. Every failure is an {@linkcode UploadError} whose `kind` says
 * whether to retry. Why Content-MD5 rather than flexible checksums: docs/design.md, "Sinks".
 *
 * @example
 * ```ts
 * import { S3Uploader } from "./s3_uploader.ts";
 * import { Logger } from "../runtime/log.ts";
 * const up = new S3Uploader({ bucket: "my-bucket", region: "us-east-1" }, new Logger({ device: "d", node: "pusher" }));
 * const check = await up.check(); // throws FatalError for a missing bucket or credentials
 * if (!check.ok) console.log("S3 unreachable for now:", check.message);
 * up.close();
 * ```
 * @module
 */

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { Backoff, delay } from "../runtime/async.ts";
import { errorMessage, FatalError, UsageError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";

/** Connection settings of an {@linkcode S3Uploader}. */
export interface S3UploaderConfig {
  bucket: string;
  /**
   * `--aws-region`. When absent, the SDK's standard resolution (`AWS_REGION`, profile config) is used, falling back
   * to `us-east-1` (MSight's default) instead of failing.
   */
  region?: string;
  /** `--use-dualstack-endpoint`: IPv6-capable AWS endpoints. */
  dualstack?: boolean;
  /** `--endpoint-url` of an S3-compatible store (MinIO, Ceph, R2); AWS's endpoints when absent. */
  endpointUrl?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need. */
  forcePathStyle?: boolean;
  /** Explicit keys; when absent the SDK's standard chain (env, profiles, SSO, instance role) is used. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Files of this size or more go up in parts (default 16 MiB; S3's minimum part is 5 MiB). */
  multipartThresholdBytes?: number;
  /** Size of each part but the last (default 8 MiB, at least 5 MiB). */
  partSizeBytes?: number;
  /** Attempts per part before the whole upload fails (default 4). */
  partAttempts?: number;
  /** Attempts of each request inside the SDK (default 2: the outbox retries the rest). */
  maxAttempts?: number;
  /** TCP connect timeout (default 5 s). */
  connectTimeoutMs?: number;
  /** Timeout of a request without response progress (default 60 s). */
  requestTimeoutMs?: number;
}

/**
 * How to treat a failure: `retryable` (network, 5xx, throttling: try again later), `config` (bucket or
 * credentials wrong: nothing will succeed until an operator acts, so retry slowly and keep the data), `permanent`
 * (this request can never succeed, e.g. 400: retrying it is useless).
 */
export type ErrorKind = "retryable" | "config" | "permanent";

/** A failed S3 operation, classified. */
export class UploadError extends Error {
  constructor(message: string, readonly kind: ErrorKind, readonly code: string) {
    super(message);
    this.name = "UploadError";
  }
}

const CONFIG_CODES = new Set([
  "NoSuchBucket",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "AccessDenied",
  "AllAccessDisabled",
  "AccountProblem",
  "InvalidBucketName",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "CredentialsProviderError",
  "PermanentRedirect",
  "AuthorizationHeaderMalformed",
]);
const RETRYABLE_CODES = new Set([
  "BadDigest",
  "NoSuchUpload",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "SlowDown",
  "ServiceUnavailable",
  "InternalError",
  "TimeoutError",
  "AbortError",
]);

interface SdkErrorShape {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  message?: string;
}

/**
 * Classifies any error thrown by the SDK (or the network under it) as an {@linkcode ErrorKind}, with its code.
 *
 * @example
 * ```ts
 * import { classifyS3Error } from "./s3_uploader.ts";
 * classifyS3Error(Object.assign(new Error("x"), { name: "NoSuchBucket" })).kind; // "config"
 * classifyS3Error(new Error("connect ECONNREFUSED 127.0.0.1:7480")).kind; // "retryable"
 * ```
 */
export function classifyS3Error(err: unknown): { kind: ErrorKind; code: string; status?: number } {
  if (err instanceof UploadError) return { kind: err.kind, code: err.code };
  const e = (typeof err === "object" && err !== null ? err : {}) as SdkErrorShape;
  const code = e.Code ?? e.name ?? e.code ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  if (CONFIG_CODES.has(code)) return { kind: "config", code, status };
  if (RETRYABLE_CODES.has(code)) return { kind: "retryable", code, status };
  if (status === undefined) return { kind: "retryable", code, status }; // no HTTP answer: network
  if (status >= 500 || status === 408 || status === 429) return { kind: "retryable", code, status };
  if (status === 401 || status === 403 || status === 404 || status === 301) {
    return { kind: "config", code, status };
  }
  return { kind: "permanent", code, status };
}

function toUploadError(err: unknown, what: string): UploadError {
  if (err instanceof UploadError) return err;
  const c = classifyS3Error(err);
  const status = c.status !== undefined ? ` (HTTP ${c.status})` : "";
  return new UploadError(`${what}: ${c.code}${status}: ${errorMessage(err)}`, c.kind, c.code);
}

/** A segment ready to upload: its `.mp4` on disk and its `.json` text. */
export interface UploadJob {
  videoPath: string;
  videoKey: string;
  metadataKey: string;
  metadataJson: string;
  /** Hex SHA-256 of the `.mp4`. */
  sha256: string;
  byteSize: number;
}

/** What an upload did. */
export interface UploadReport {
  videoEtag: string;
  metadataEtag: string;
  /** Number of parts of the `.mp4`, 0 for a single PUT. */
  parts: number;
}

/** Result of {@linkcode S3Uploader.check} when it does not throw. */
export type CheckResult = { ok: true } | { ok: false; message: string };

const MiB = 1024 * 1024;
const encoder = new TextEncoder();

/** The SDK's own region resolution (env, shared config), or MSight's `us-east-1` where it finds none. */
export async function resolveDefaultRegion(): Promise<string> {
  const probe = new S3Client({});
  try {
    return await probe.config.region();
  } catch {
    // No region anywhere in the SDK's chain: MSight's default, as --aws-region documents.
    return "us-east-1";
  } finally {
    probe.destroy();
  }
}

function md5Base64(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("base64");
}

/** An S3 client bound to one bucket. Call {@linkcode S3Uploader.close} when done (it owns sockets). */
export class S3Uploader {
  readonly bucket: string;
  readonly client: S3Client;
  #cfg: S3UploaderConfig;
  #log: Logger;

  constructor(cfg: S3UploaderConfig, log: Logger) {
    this.bucket = cfg.bucket;
    this.#cfg = cfg;
    this.#log = log;
    const partSize = cfg.partSizeBytes ?? 8 * MiB;
    if (partSize < 5 * MiB) throw new RangeError(`S3 part size ${partSize} is below the 5 MiB minimum`);
    if (cfg.dualstack && cfg.endpointUrl) {
      throw new UsageError("--use-dualstack-endpoint cannot be combined with --endpoint-url");
    }
    const config: S3ClientConfig = {
      region: cfg.region ?? resolveDefaultRegion,
      useDualstackEndpoint: cfg.dualstack ?? false,
      forcePathStyle: cfg.forcePathStyle ?? false,
      maxAttempts: cfg.maxAttempts ?? 2,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        connectionTimeout: cfg.connectTimeoutMs ?? 5000,
        requestTimeout: cfg.requestTimeoutMs ?? 60000,
      },
    };
    if (cfg.endpointUrl) config.endpoint = cfg.endpointUrl;
    if (cfg.credentials) {
      config.credentials = cfg.credentials;
      log.addSecret(cfg.credentials.secretAccessKey);
      log.addSecret(cfg.credentials.sessionToken);
    }
    this.client = new S3Client(config);
  }

  /** Where requests go, for log lines. */
  get target(): string {
    return `s3://${this.bucket}` + (this.#cfg.endpointUrl ? ` at ${this.#cfg.endpointUrl}` : "");
  }

  /**
   * Startup check: resolves credentials and sends HeadBucket. Missing credentials, a missing bucket, or refused
   * access throw a {@linkcode FatalError} with one clear line; a network failure returns `{ ok: false }` (the
   * pusher keeps spooling and retries later).
   *
   * @example
   * ```ts
   * declare const up: import("./s3_uploader.ts").S3Uploader;
   * const r = await up.check();
   * ```
   */
  async check(signal?: AbortSignal): Promise<CheckResult> {
    try {
      await this.client.config.credentials();
    } catch (err) {
      throw new FatalError(
        `no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run 'aws configure'): ${
          errorMessage(err)
        }`,
      );
    }
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
      return { ok: true };
    } catch (err) {
      const c = classifyS3Error(err);
      if (c.kind === "retryable") {
        return { ok: false, message: `${this.target} unreachable: ${errorMessage(err)}` };
      }
      if (c.status === 404 || c.code === "NoSuchBucket" || c.code === "NotFound") {
        throw new FatalError(`bucket "${this.bucket}" does not exist (${this.target})`);
      }
      if (c.status === 403 || c.kind === "config") {
        throw new FatalError(
          `access to bucket "${this.bucket}" denied (${this.target}): the credentials are wrong or lack permission`,
        );
      }
      throw new FatalError(`bucket check of ${this.target} failed: ${c.code}: ${errorMessage(err)}`);
    }
  }

  /**
   * Uploads the `.mp4` then the `.json`; the `.json` is only written once the video is stored. Throws an
   * {@linkcode UploadError}.
   *
   * @example
   * ```ts
   * declare const up: import("./s3_uploader.ts").S3Uploader;
   * declare const job: import("./s3_uploader.ts").UploadJob;
   * const { videoEtag, parts } = await up.uploadSegment(job);
   * ```
   */
  async uploadSegment(job: UploadJob, signal?: AbortSignal): Promise<UploadReport> {
    const video = await this.uploadFile(job.videoPath, job.videoKey, "video/mp4", job.sha256, signal);
    const json = encoder.encode(job.metadataJson);
    const meta = await this.putBytes(
      json,
      job.metadataKey,
      "application/json",
      createHash("sha256").update(json).digest("hex"),
      signal,
    );
    return { videoEtag: video.etag, metadataEtag: meta.etag, parts: video.parts };
  }

  /**
   * Uploads a file, in one PUT below the multipart threshold, else in parts.
   *
   * @example
   * ```ts
   * declare const up: import("./s3_uploader.ts").S3Uploader;
   * await up.uploadFile("/spool/1.mp4", "a/b.mp4", "video/mp4", "e3b0c442...");
   * ```
   */
  async uploadFile(
    path: string,
    key: string,
    contentType: string,
    sha256: string,
    signal?: AbortSignal,
  ): Promise<{ etag: string; parts: number }> {
    let size: number;
    try {
      size = (await Deno.stat(path)).size;
    } catch (err) {
      throw new UploadError(`cannot read ${path}: ${errorMessage(err)}`, "permanent", "LocalFile");
    }
    if (size < (this.#cfg.multipartThresholdBytes ?? 16 * MiB)) {
      const bytes = await Deno.readFile(path);
      return { ...(await this.putBytes(bytes, key, contentType, sha256, signal)), parts: 0 };
    }
    return await this.#multipart(path, size, key, contentType, sha256, signal);
  }

  /**
   * One PUT of some bytes, with Content-MD5 and the SHA-256 as object metadata.
   *
   * @example
   * ```ts
   * declare const up: import("./s3_uploader.ts").S3Uploader;
   * await up.putBytes(new TextEncoder().encode("{}"), "a/b.json", "application/json", "44136fa3...");
   * ```
   */
  async putBytes(
    bytes: Uint8Array,
    key: string,
    contentType: string,
    sha256: string,
    signal?: AbortSignal,
  ): Promise<{ etag: string }> {
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentType: contentType,
          ContentLength: bytes.byteLength,
          ContentMD5: md5Base64(bytes),
          Metadata: { sha256 },
        }),
        { abortSignal: signal },
      );
      return { etag: out.ETag ?? "" };
    } catch (err) {
      throw toUploadError(err, `PUT ${key}`);
    }
  }

  /**
   * Aborts unfinished multipart uploads of `key` (left by an earlier attempt or process); returns how many.
   *
   * @example
   * ```ts
   * declare const up: import("./s3_uploader.ts").S3Uploader;
   * const n = await up.abortStaleUploads("a/b.mp4");
   * ```
   */
  async abortStaleUploads(key: string, signal?: AbortSignal): Promise<number> {
    let n = 0;
    try {
      const list = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }),
        { abortSignal: signal },
      );
      for (const u of list.Uploads ?? []) {
        if (u.Key !== key || !u.UploadId) continue;
        await this.client.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: u.UploadId }),
          { abortSignal: signal },
        );
        n++;
      }
    } catch (err) {
      throw toUploadError(err, `listing multipart uploads of ${key}`);
    }
    if (n > 0) this.#log.info(`aborted ${n} unfinished multipart upload(s) of ${key}`);
    return n;
  }

  async #multipart(
    path: string,
    size: number,
    key: string,
    contentType: string,
    sha256: string,
    signal?: AbortSignal,
  ): Promise<{ etag: string; parts: number }> {
    const partSize = this.#cfg.partSizeBytes ?? 8 * MiB;
    const attempts = this.#cfg.partAttempts ?? 4;
    await this.abortStaleUploads(key, signal);
    let uploadId: string;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          ContentType: contentType,
          Metadata: { sha256 },
        }),
        { abortSignal: signal },
      );
      if (!created.UploadId) throw new UploadError(`no UploadId for ${key}`, "retryable", "NoUploadId");
      uploadId = created.UploadId;
    } catch (err) {
      throw toUploadError(err, `starting multipart upload of ${key}`);
    }
    const file = await Deno.open(path, { read: true });
    try {
      const parts: { PartNumber: number; ETag: string }[] = [];
      const count = Math.ceil(size / partSize);
      for (let n = 1; n <= count; n++) {
        const len = Math.min(partSize, size - (n - 1) * partSize);
        const buf = new Uint8Array(len);
        await file.seek((n - 1) * partSize, Deno.SeekMode.Start);
        let off = 0;
        while (off < len) {
          const r = await file.read(buf.subarray(off));
          if (r === null) throw new UploadError(`${path} shrank while uploading`, "permanent", "LocalFile");
          off += r;
        }
        parts.push({ PartNumber: n, ETag: await this.#uploadPart(buf, key, uploadId, n, attempts, signal) });
      }
      const done = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
        { abortSignal: signal },
      );
      return { etag: done.ETag ?? "", parts: count };
    } catch (err) {
      // Without this the store keeps (and bills) the parts forever.
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
      )
        .catch((abortErr) =>
          this.#log.warn(
            `could not abort multipart upload of ${key}; it is aborted before the next attempt`,
            {
              error: errorMessage(abortErr),
            },
          )
        );
      throw toUploadError(err, `multipart upload of ${key}`);
    } finally {
      file.close();
    }
  }

  async #uploadPart(
    body: Uint8Array,
    key: string,
    uploadId: string,
    n: number,
    attempts: number,
    signal?: AbortSignal,
  ): Promise<string> {
    const md5 = md5Base64(body);
    const backoff = new Backoff({ initial: 400, max: 5000 });
    for (let attempt = 1;; attempt++) {
      try {
        const out = await this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: n,
            Body: body,
            ContentLength: body.byteLength,
            ContentMD5: md5,
          }),
          { abortSignal: signal },
        );
        return out.ETag ?? "";
      } catch (err) {
        const e = toUploadError(err, `part ${n} of ${key}`);
        if (e.kind !== "retryable" || attempt >= attempts || signal?.aborted) throw e;
        this.#log.warn(`retrying part ${n} of ${key}`, { attempt, error: e.message });
        await delay(backoff.next(), signal);
      }
    }
  }

  /** Releases the client's sockets. */
  close(): void {
    this.client.destroy();
  }
}
