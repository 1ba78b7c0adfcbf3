/**
 * The `web` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher's
 * permissions and the tests. A list flag may be repeated or comma-separated (the parser joins repeats with commas).
 * @module
 */

import { UsageError } from "../runtime/errors.ts";

/** The web console's own flags. */
export const WEB_FLAGS = {
  port: {
    long: "port",
    type: "int",
    default: 8080,
    min: 0,
    max: 65535,
    help: "HTTP port (0: any free port)",
  },
  host: {
    long: "host",
    type: "string",
    default: "127.0.0.1",
    help: "address to listen on; anything but loopback needs --auth-token or --auth-token-file",
  },
  saveDir: {
    long: "save-dir",
    short: "sd",
    type: "string",
    metavar: "DIR[,DIR...]",
    repeatable: true,
    help:
      "dumper directories to browse (read-only); repeat the flag or separate with commas; none: no Recordings",
  },
  authToken: {
    long: "auth-token",
    type: "string",
    env: "MSIGHT_WEB_TOKEN",
    help:
      "token every request must carry (Authorization: Bearer, or ?token= once, which sets a cookie); required off loopback",
  },
  authTokenFile: {
    long: "auth-token-file",
    type: "string",
    metavar: "FILE",
    help: "read the token from this file (first line) instead of the command line",
  },
  previewFps: {
    long: "preview-fps",
    type: "number",
    default: 2,
    min: 0,
    minExclusive: true,
    max: 30,
    help: "most camera previews per second the page asks for, per camera",
  },
  staleAfter: {
    long: "stale-after",
    type: "number",
    default: 15,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "show a node as stopped when its heartbeat is older than this (MSight's --heartbeat-tolerance)",
  },
  s3Bucket: {
    long: "s3-bucket",
    type: "string",
    help:
      "also browse the segments the pusher uploaded to this bucket (AWS SDK credential chain, as the pusher)",
  },
  prefix: { long: "prefix", type: "string", default: "", help: "the pusher's --prefix in --s3-bucket" },
  awsRegion: {
    long: "aws-region",
    type: "string",
    help: "AWS region of --s3-bucket (default: the SDK's, else us-east-1, as the pusher)",
  },
  endpointUrl: {
    long: "endpoint-url",
    type: "string",
    env: "AWS_ENDPOINT_URL_S3",
    help: "S3-compatible endpoint (MinIO, Ceph, R2) of --s3-bucket; AWS when unset",
  },
  forcePathStyle: {
    long: "force-path-style",
    type: "bool",
    default: false,
    help: "path-style addressing (implied by --endpoint-url)",
  },
  metricsUrls: {
    long: "metrics-urls",
    type: "string",
    metavar: "NODE=URL[,...]",
    help:
      "where our nodes serve /metrics (the registry does not say), e.g. rtsp_node=http://127.0.0.1:9101/metrics",
  },
} as const;

/** True for addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Splits a comma-separated flag value into its non-empty items. */
export function splitList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Parses `--metrics-urls` into node name → URL; throws a one-line {@linkcode UsageError} on a bad item. */
export function parseMetricsUrls(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of splitList(value)) {
    const eq = item.indexOf("=");
    const url = eq > 0 ? item.slice(eq + 1) : "";
    if (eq <= 0 || !/^https?:\/\/[^/\s]+/.test(url)) {
      throw new UsageError(
        `--metrics-urls item ${JSON.stringify(item)} is invalid: expected NODE=http://HOST:PORT/metrics`,
      );
    }
    out.set(item.slice(0, eq), url);
  }
  return out;
}

/** The start-up check of the console: off loopback, a token is required. */
export function checkWebFlags(f: { host: string; authToken?: string; authTokenFile?: string }): void {
  if (!isLoopback(f.host) && !f.authToken && !f.authTokenFile) {
    throw new UsageError(
      `--host ${f.host} is not loopback: give --auth-token or --auth-token-file (or MSIGHT_WEB_TOKEN), ` +
        `or keep the default --host 127.0.0.1`,
    );
  }
  if (f.authToken !== undefined && f.authToken.length < 8) {
    throw new UsageError(`--auth-token is too short (${f.authToken.length} characters): use at least 8`);
  }
}
