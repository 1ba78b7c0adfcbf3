/**
 * The whole MSight pipeline as real processes, for the fault suite and its CI subset: a private Redis, a GStreamer
 * RTSP camera (the Mcity frames), the RTSP node, the aggregator, the dumper and (optionally) the S3 pusher against a
 * single-node Ceph radosgw. Each node runs in its own `deno run` process with its real permissions
 * (`permissionFlags`) and serves `/metrics` and `/readyz` on its own loopback port. The harness owns every process:
 * {@linkcode Pipeline.stop} kills them all, and every wait is bounded.
 *
 * @example
 * ```ts
 * import { startPipeline } from "./pipeline.ts";
 * const p = await startPipeline({ s3: false });
 * try {
 *   console.log(await p.nodes.aggregator.metric("msight_segments_published_total"));
 * } finally {
 *   await p.stop();
 * }
 * ```
 * @module
 */

import { startRedis, type TestRedis } from "../test/helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../test/helpers/rtsp_server.ts";
import { type S3TestServer, startS3Server } from "../test/helpers/s3_server.ts";
import { type NodeProcess, startNode } from "../test/helpers/process.ts";
import { freePort, waitFor } from "../test/helpers/net.ts";
import { type NodeName, permissionFlags, runtimeFlags } from "../src/launcher/permissions.ts";

/** Topics, names and bucket of the pipeline under test. */
export const PIPE = {
  frames: "faults_frames",
  video: "faults_video",
  sensor: "cam",
  bucket: "msight-faults",
  prefix: "faults",
  device: "faults-device",
} as const;

/** Options of {@linkcode startPipeline}. */
export interface PipelineOptions {
  /** Start radosgw and the S3 pusher (about 12 s more to start). */
  s3: boolean;
  /** Aggregator `--buffer-size` (20 at the camera's 10 fps: a segment every 2 s). */
  bufferSize?: number;
  /** RTSP node `--stall-timeout`, seconds (3). */
  stallTimeoutS?: number;
  /** Pusher `--spool-max-bytes` (64 MiB). */
  spoolMaxBytes?: number;
  /** Print node lines as they come (for debugging a run). */
  echo?: boolean;
}

/** Sums of a Prometheus text exposition, by metric name (all label sets added up) and by full series. */
export interface MetricSample {
  /** `name` → sum over its label sets. */
  byName: Map<string, number>;
  /** `name{labels}` → value. */
  series: Map<string, number>;
}

/**
 * Parses Prometheus text into per-name sums and per-series values.
 *
 * @example
 * ```ts
 * import { parseMetrics } from "./pipeline.ts";
 * parseMetrics('x_total{k="a"} 2\nx_total{k="b"} 3\n').byName.get("x_total"); // 5
 * ```
 */
export function parseMetrics(text: string): MetricSample {
  const byName = new Map<string, number>();
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    series.set(m[1] + (m[2] ?? ""), v);
    byName.set(m[1], (byName.get(m[1]) ?? 0) + v);
  }
  return { byName, series };
}

/**
 * One node of the pipeline: restartable, its lines kept across runs.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string>, perms: string[];
 * const node = new PipelineNode("dumper", "d", 9464, ["-st", "v", "--save-dir", "/tmp/v"], env, perms);
 * await node.start();
 * console.log(await node.metric("msight_dumper_segments_written_total"));
 * await node.stop();
 * ```
 */
export class PipelineNode {
  proc?: NodeProcess;
  /** Exit codes of runs that ended without being asked to (a crash). */
  readonly unexpectedExits: number[] = [];
  readonly #runs: NodeProcess[] = [];
  #stopping = false;

  constructor(
    readonly kind: NodeName,
    readonly name: string,
    readonly port: number,
    readonly args: string[],
    readonly env: Record<string, string>,
    readonly permissions: string[],
    readonly echo = false,
  ) {}

  /** Starts a run and waits (≤ 60 s) until `/readyz` answers 200. */
  async start(): Promise<void> {
    this.#stopping = false;
    const proc = startNode(
      `nodes/${this.kind}.ts`,
      [
        "-n",
        this.name,
        "--metrics-port",
        String(this.port),
        ...this.args,
      ],
      this.env,
      // The Deno flags the launchers give this kind of node (bin/msight-launch, up), then its permissions.
      [...runtimeFlags(this.kind), ...this.permissions],
    );
    this.proc = proc;
    this.#runs.push(proc);
    proc.exit.then((code) => {
      if (!this.#stopping && this.proc === proc) this.unexpectedExits.push(code);
    });
    if (this.echo) this.#echo(proc);
    await waitFor(() => this.ready(), 60_000, `${this.name} ready`, 200).catch((err) => {
      throw new Error(`${(err as Error).message}\n${proc.stderr.slice(-15).join("\n")}`);
    });
  }

  #echo(proc: NodeProcess): void {
    let shown = 0;
    const t = setInterval(() => {
      for (; shown < proc.stderr.length; shown++) console.log(`${this.name} | ${proc.stderr[shown]}`);
    }, 500);
    proc.exit.finally(() => clearInterval(t));
  }

  /** Every stderr line of every run, oldest first. */
  lines(): string[] {
    return this.#runs.flatMap((r) => r.stderr);
  }

  /** True while `/readyz` answers 200 (false when the node does not answer in 1 s). */
  async ready(): Promise<boolean> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      // Not listening yet, or busy: not ready.
      return false;
    }
  }

  /** The node's metrics now (empty when it does not answer in 2 s). */
  async metrics(): Promise<MetricSample> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/metrics`, { signal: AbortSignal.timeout(2000) });
      return parseMetrics(await res.text());
    } catch {
      // The node is down: no metrics (the caller sees them missing).
      return { byName: new Map(), series: new Map() };
    }
  }

  /** One metric summed over its labels (0 when absent or unreachable). */
  async metric(name: string): Promise<number> {
    return (await this.metrics()).byName.get(name) ?? 0;
  }

  /** Sends a signal to the current run; a SIGKILL is a crash on purpose, not counted as unexpected. */
  kill(signal: Deno.Signal): void {
    this.#stopping = true;
    this.proc?.kill(signal);
  }

  /** SIGTERM, then SIGKILL after `graceS`; waits for the exit. */
  async stop(graceS = 10): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.#stopping = true;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), graceS * 1000);
    await proc.exit;
    clearTimeout(timer);
  }
}

/** The running pipeline. */
export interface Pipeline {
  redis: TestRedis;
  camera: RtspServer;
  s3?: S3TestServer;
  /** Temporary directory: `videos/` (the dumper), `spool/` (the pusher). */
  root: string;
  saveDir: string;
  spoolDir: string;
  nodes: {
    rtsp: PipelineNode;
    aggregator: PipelineNode;
    dumper: PipelineNode;
    pusher?: PipelineNode;
  };
  /** Environment of a pusher process (Redis, S3 keys, no AWS lookups). */
  pusherEnv: Record<string, string>;
  /** Adds and starts another node on the same Redis (stopped with the pipeline). */
  addNode(
    kind: NodeName,
    name: string,
    args: string[],
    opts?: { env?: Record<string, string>; permissions?: string[] },
  ): Promise<PipelineNode>;
  stop(): Promise<void>;
}

/** Creates the bucket with the AWS SDK (the pusher refuses a missing bucket at start). */
async function createBucket(s3: S3TestServer): Promise<void> {
  const { CreateBucketCommand, S3Client } = await import("@aws-sdk/client-s3");
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: PIPE.bucket }));
  } finally {
    client.destroy();
  }
}

/**
 * Starts servers and nodes (source first, so the sinks see the aggregator's durable stream at once).
 *
 * @example
 * ```ts
 * const p = await startPipeline({ s3: true, bufferSize: 20 });
 * await p.redis.restart(500);
 * await p.stop();
 * ```
 */
export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const root = await Deno.makeTempDir({ prefix: "msight-faults-" });
  const saveDir = `${root}/videos`, spoolDir = `${root}/spool`;
  let redis: TestRedis | undefined, camera: RtspServer | undefined, s3: S3TestServer | undefined;
  const built: PipelineNode[] = [];
  const stop = async () => {
    // Cleanup: a node that fails to stop was already reported by its run.
    for (const n of built.toReversed()) await n.stop(5).catch(() => {});
    await camera?.stop();
    await redis?.stop();
    await s3?.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {}); // temporary files: best effort
  };
  try {
    [redis, camera, s3] = await Promise.all([
      startRedis(),
      startRtspServer({ source: "mcity", path: "/faults", protocols: "tcp" }),
      opts.s3 ? startS3Server() : Promise.resolve(undefined),
    ]);
    if (s3) await createBucket(s3);
    const env = { ...redis.env, MSIGHT_EDGE_DEVICE_NAME: PIPE.device };
    const pusherEnv: Record<string, string> = {
      ...env,
      AWS_ACCESS_KEY_ID: s3?.accessKeyId ?? "",
      AWS_SECRET_ACCESS_KEY: s3?.secretAccessKey ?? "",
      AWS_SESSION_TOKEN: "",
      AWS_PROFILE: "",
      AWS_REGION: "us-east-1",
      AWS_EC2_METADATA_DISABLED: "true",
    };
    const make = async (
      kind: NodeName,
      name: string,
      args: string[],
      o: { env?: Record<string, string>; permissions?: string[] } = {},
    ) => {
      const node = new PipelineNode(
        kind,
        name,
        freePort(),
        args,
        o.env ?? env,
        o.permissions ?? permissionFlags(kind),
        opts.echo,
      );
      built.push(node);
      await node.start();
      return node;
    };
    const cam = camera;
    const rtsp = await make("rtsp", "faults_rtsp", [
      "-pt",
      PIPE.frames,
      "-sn",
      PIPE.sensor,
      "-u",
      cam.url,
      "--frame-log-every",
      "0",
      "--stall-timeout",
      String(opts.stallTimeoutS ?? 3),
    ]);
    const aggregator = await make("aggregator", "faults_aggregator", [
      "-st",
      PIPE.frames,
      "-pt",
      PIPE.video,
      "--fps",
      "10",
      "--buffer-size",
      String(opts.bufferSize ?? 20),
      "--overlap-size",
      "0",
    ]);
    const dumper = await make("dumper", "faults_dumper", ["-st", PIPE.video, "--save-dir", saveDir], {
      permissions: permissionFlags("dumper", { saveDir }),
    });
    const pusher = s3
      ? await make("pusher", "faults_pusher", [
        "-st",
        PIPE.video,
        "--bucket-name",
        PIPE.bucket,
        "--prefix",
        PIPE.prefix,
        "--endpoint-url",
        s3.endpoint,
        "--spool-dir",
        spoolDir,
        "--spool-max-bytes",
        String(opts.spoolMaxBytes ?? 64 * 2 ** 20),
      ], { env: pusherEnv, permissions: permissionFlags("pusher", { spoolDir }) })
      : undefined;
    return {
      redis,
      camera: cam,
      s3,
      root,
      saveDir,
      spoolDir,
      nodes: { rtsp, aggregator, dumper, pusher },
      pusherEnv,
      addNode: make,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
