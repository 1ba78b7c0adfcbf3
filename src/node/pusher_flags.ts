/**
 * The `pusher` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher
 * and the reference YAML test.
 * @module
 */

import { GAP_WITH_SHORT, SUBSCRIBE_TOPIC } from "./common_flags.ts";
import { TRANSPORT_FLAG } from "../sinks/transport_flag.ts";
import { normalizePrefix } from "../sinks/naming.ts";
import { errorMessage, UsageError } from "../runtime/errors.ts";

/** The pusher's own flags. */
export const PUSHER_FLAGS = {
  ...SUBSCRIBE_TOPIC,
  ...GAP_WITH_SHORT,
  bucketName: { long: "bucket-name", type: "string", required: true, help: "S3 bucket" },
  prefix: { long: "prefix", type: "string", default: "", help: "key prefix (MSight's layout below it)" },
  awsRegion: {
    long: "aws-region",
    type: "string",
    help: "AWS region (default: AWS_REGION or the profile's region, else us-east-1 as MSight)",
  },
  useDualstackEndpoint: {
    long: "use-dualstack-endpoint",
    type: "bool",
    default: false,
    help: "use AWS's IPv6-capable endpoints",
  },
  wait: {
    long: "wait",
    short: "w",
    type: "number",
    default: 0,
    min: 0,
    metavar: "SECONDS",
    help: "wait this long before starting (as MSight)",
  },
  endpointUrl: {
    long: "endpoint-url",
    type: "string",
    env: "AWS_ENDPOINT_URL_S3",
    help: "S3-compatible endpoint (MinIO, Ceph, R2); AWS when unset",
  },
  forcePathStyle: {
    long: "force-path-style",
    type: "bool",
    default: false,
    help: "path-style addressing (implied by --endpoint-url)",
  },
  spoolDir: { long: "spool-dir", type: "string", help: "outbox directory (default: ./.msight-spool/<name>)" },
  spoolMaxBytes: {
    long: "spool-max-bytes",
    type: "number",
    default: 2 * 1024 ** 3,
    min: 1,
    metavar: "BYTES",
    help: "outbox bound; when full the oldest segment is dropped (logged, counted)",
  },
  drainTimeout: {
    long: "drain-timeout",
    type: "number",
    default: 10,
    min: 0,
    metavar: "SECONDS",
    help: "on stop, keep uploading this long; the rest stays spooled for the next start",
  },
  ...TRANSPORT_FLAG,
} as const;

/** Cross-flag checks of the pusher (the launcher runs them too, before anything starts). */
export function checkPusherFlags(f: { prefix: string }): void {
  try {
    normalizePrefix(f.prefix);
  } catch (err) {
    throw new UsageError(`--prefix ${JSON.stringify(f.prefix)} is invalid: ${errorMessage(err)}`);
  }
}
