/**
 * Runs a checked {@linkcode Pipeline}: a private Redis first when the file asks for one, then each node as its own
 * `deno run` process (the RTSP nodes up to `cameras_per_process` to a process: `process_plan.ts`) with only its own
 * permissions (`permissions.ts`; the dumper may write only its `--save-dir`, the pusher only its `--spool-dir`),
 * under one {@linkcode Supervisor} that prefixes their lines with the process's name and restarts one that exits
 * with backoff. Every child runs in its own session, so a terminal's Ctrl-C reaches only the launcher, which then
 * stops the nodes in pipeline order (sources first: the aggregator flushes its partial segment while the sinks
 * still run to save it), each within its `--shutdown-grace`, and Redis last.
 *
 * @example
 * ```ts
 * import { loadPipeline } from "./pipeline_config.ts";
 * import { PipelineRunner } from "./pipeline_runner.ts";
 * const runner = await PipelineRunner.start(await loadPipeline("pipeline.yaml"), { log: console.log });
 * await runner.stop();
 * ```
 * @module
 */

import { delay } from "../runtime/async.ts";
import { FatalError } from "../runtime/errors.ts";
import { freePort } from "../runtime/net.ts";
import { maskUrlCredentials } from "../runtime/log.ts";
import type { Pipeline, PipelineNode } from "./pipeline_config.ts";
import { nodeScript, permissionFlags, runtimeFlags } from "./permissions.ts";
import { type ProcessSpec, Supervisor } from "./supervisor.ts";
import { privateRedisArgs } from "./private_redis.ts";
import { busEnv, registryPlace } from "./bus_plan.ts";
import { planProcesses, type ProcessPlan } from "./process_plan.ts";
import { GROUP_SEPARATOR } from "../node/node_group.ts";

/** Options of {@linkcode PipelineRunner.start}. */
export interface RunnerOptions {
  /** Receives every line: the nodes' (prefixed with their name) and the launcher's own (prefixed `up`). */
  log: (line: string) => void;
  /** First restart delay and its cap, seconds (the Supervisor's default 1, 30). */
  backoffS?: [number, number];
  /** Directory the nodes run in, so relative paths in flags are relative to it (default: the current one). */
  cwd?: string;
  /** Prefix of the launcher's own lines (`up`; the demo's are `demo`). */
  label?: string;
}

const ROOT = new URL("../../", import.meta.url).pathname;
/** Seconds a private Redis gets to answer PING after it was started. */
const REDIS_START_TIMEOUT_S = 10;

async function redisAnswers(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await c.write(new TextEncoder().encode("PING\r\n"));
      const buf = new Uint8Array(16);
      const n = await c.read(buf);
      return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
    } finally {
      c.close();
    }
  } catch {
    // Nothing listening (yet): that is the answer.
    return false;
  }
}

async function requireRedisServer(): Promise<void> {
  try {
    const r = await new Deno.Command("redis-server", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    if (r.success) return;
  } catch {
    // Not installed: reported below.
  }
  throw new FatalError(
    "redis: start: true needs redis-server: install it with ./edge setup (apt-get install redis-server)",
  );
}

/**
 * The process of one node, or of several RTSP nodes (`process_plan.ts`): `deno run <their permissions>
 * nodes/<type>.ts <flags> [--next <flags>]...`, in its own session.
 *
 * @example
 * ```ts
 * import type { Pipeline } from "./pipeline_config.ts";
 * declare const pipeline: Pipeline;
 * const spec = nodeProcess({ name: "aggregator", nodes: [pipeline.nodes[1]] }, { REDIS_URL: "redis://127.0.0.1:6379/0" }, Deno.cwd());
 * ```
 */
export function nodeProcess(
  plan: ProcessPlan<PipelineNode>,
  env: Record<string, string>,
  cwd: string,
): ProcessSpec {
  const first = plan.nodes[0];
  const f = first.effective;
  // The nodes of one process are of one type with one environment (process_plan.ts): one set of permissions.
  const perms = permissionFlags(first.type, {
    saveDir: typeof f.saveDir === "string" ? f.saveDir : undefined,
    spoolDir: typeof f.spoolDir === "string" ? f.spoolDir : undefined,
  });
  return {
    name: plan.name,
    cmd: Deno.execPath(),
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      ...runtimeFlags(first.type),
      ...perms,
      `${ROOT}${nodeScript(first.type)}`,
      ...plan.nodes.flatMap((n, i) => (i === 0 ? n.argv : [GROUP_SEPARATOR, ...n.argv])),
    ],
    env: { ...env, ...first.env }, // the node's own env: wins, as the most specific
    cwd,
    restart: first.restart,
    role: "node",
    detached: true,
  };
}

/**
 * The launcher's line about `bus:` (undefined without one): the back end, its servers without credentials, and
 * where the registry is as the nodes will choose it from `env` (what the launcher gives every node), the file's
 * `env:` and the launcher's own environment.
 *
 * @example
 * ```ts
 * import type { Pipeline } from "./pipeline_config.ts";
 * declare const pipeline: Pipeline;
 * busLine(pipeline, {}); // "bus: nats at nats://10.0.0.1:4222; registry in JetStream key-value buckets ..."
 * ```
 */
export function busLine(pipeline: Pipeline, env: Record<string, string>): string | undefined {
  const bus = pipeline.bus;
  if (!bus) return undefined;
  // As a node's environment is made: the launcher's, then what it gives every node, then the file's `env:`.
  const nodeEnv: Record<string, string> = { ...env, ...busEnv(bus), ...pipeline.env };
  const registry = bus.backend === "nats" && pipeline.redis?.mode === "start" && env.REDIS_URL === undefined
    ? "registry in the private Redis (redis: start)"
    : registryPlace(bus, (k) => nodeEnv[k] ?? Deno.env.get(k));
  return `bus: ${bus.backend} at ${bus.display}; ${registry}`;
}

/**
 * The width of the name column for a pipeline's lines: its longest node name (at least 12), so no name is cut.
 *
 * @example
 * ```ts
 * import type { Pipeline } from "./pipeline_config.ts";
 * declare const pipeline: Pipeline;
 * const say = (l: string) => console.log(`${"up".padEnd(prefixWidth(pipeline))} | ${l}`);
 * ```
 */
export function prefixWidth(pipeline: Pipeline): number {
  const groups = planProcesses(pipeline.nodes, pipeline.camerasPerProcess).map((p) => p.name);
  return Math.max(12, ...pipeline.nodes.map((n) => n.name.length), ...groups.map((g) => g.length));
}

/** A running pipeline; see the module doc. */
export class PipelineRunner {
  readonly #sup: Supervisor;
  readonly #pipeline: Pipeline;
  readonly #processes: ProcessPlan<PipelineNode>[];
  readonly #say: (line: string) => void;
  #stopped?: Promise<void>;

  private constructor(pipeline: Pipeline, opts: RunnerOptions) {
    this.#pipeline = pipeline;
    this.#processes = planProcesses(pipeline.nodes, pipeline.camerasPerProcess);
    // Names are never cut: `camera_north_1` and `camera_north_2` must stay apart.
    const width = prefixWidth(pipeline);
    this.#sup = new Supervisor({ log: opts.log, backoffS: opts.backoffS, prefixWidth: width });
    this.#say = (line) => opts.log(`${(opts.label ?? "up").padEnd(width)} | ${line}`);
  }

  /**
   * Starts the pipeline and resolves once every process has been started; throws {@linkcode FatalError} (after
   * stopping what it started) when the private Redis cannot start.
   *
   * @example
   * ```ts
   * import type { Pipeline } from "./pipeline_config.ts";
   * declare const pipeline: Pipeline;
   * const runner = await PipelineRunner.start(pipeline, { log: (l) => console.log(l), backoffS: [0.5, 10] });
   * ```
   */
  static async start(pipeline: Pipeline, opts: RunnerOptions): Promise<PipelineRunner> {
    const runner = new PipelineRunner(pipeline, opts);
    await runner.#start(opts.cwd ?? Deno.cwd());
    return runner;
  }

  async #start(cwd: string): Promise<void> {
    const p = this.#pipeline;
    const env: Record<string, string> = {};
    if (p.device) env.MSIGHT_EDGE_DEVICE_NAME = p.device;
    if (p.redis?.mode === "url") {
      env.REDIS_URL = p.redis.url;
      this.#say(`Redis: ${maskUrlCredentials(p.redis.url)}`);
    } else if (p.redis?.mode === "start") {
      env.REDIS_URL = `redis://127.0.0.1:${await this.#startRedis(p.redis.port)}/0`;
    }
    if (p.bus) {
      // In the environment, not on command lines: the URL may hold credentials.
      Object.assign(env, busEnv(p.bus));
      this.#say(busLine(p, env)!);
    }
    for (const plan of this.#processes) {
      this.#sup.add(nodeProcess(plan, env, cwd));
    }
    this.#say(
      `started ${p.nodes.length} node(s) from ${p.label}: ${
        p.nodes.map((n) => `${n.name} (${n.type})`).join(", ")
      }`,
    );
    for (const g of this.#processes.filter((x) => x.nodes.length > 1)) {
      this.#say(
        `${g.name}: ${g.nodes.map((n) => n.name).join(", ")} in one process (cameras_per_process ` +
          `${p.camerasPerProcess}; each is its own node)`,
      );
    }
  }

  async #startRedis(wanted: number | undefined): Promise<number> {
    await requireRedisServer();
    const port = wanted ?? freePort();
    this.#say(`starting a private Redis on 127.0.0.1:${port}`);
    this.#sup.add({
      name: "redis",
      role: "service",
      cmd: "redis-server",
      // Loopback only, nothing written to disk: it lives and dies with the pipeline.
      args: privateRedisArgs(port),
      detached: true,
    });
    const deadline = Date.now() + REDIS_START_TIMEOUT_S * 1000;
    while (!(await redisAnswers(port))) {
      if (Date.now() > deadline) {
        await this.#sup.stop(2);
        throw new FatalError(
          `the private Redis did not answer on 127.0.0.1:${port} within ${REDIS_START_TIMEOUT_S} s` +
            (wanted ? " (is the port taken?)" : ""),
        );
      }
      await delay(100);
    }
    return port;
  }

  /** Names of the processes running now (nodes and Redis). */
  get running(): string[] {
    return this.#sup.running;
  }

  /**
   * Stops the nodes one by one in pipeline order, each within its grace, then the private Redis; idempotent.
   *
   * @example
   * ```ts
   * declare const runner: PipelineRunner;
   * await runner.stop("SIGTERM");
   * ```
   */
  stop(reason = "asked to"): Promise<void> {
    this.#stopped ??= (async () => {
      const names = this.#processes.map((p) => p.name);
      this.#say(
        `stopping (${reason}) in pipeline order: ${names.join(", ")}; a second signal kills them at once`,
      );
      for (const p of this.#processes) {
        await this.#sup.stopOne(p.name, Math.max(...p.nodes.map((n) => n.graceS)));
      }
      await this.#sup.stop(5); // what is left: the private Redis
      this.#say("stopped");
    })();
    return this.#stopped;
  }
}
