/**
 * The life of a node: parse flags (argparse-style, with `--config`), read the environment, set up logging, connect
 * to the bus (whichever back end `select.ts` chooses; the node sees it through the {@linkcode Bus} interface),
 * register in `MSIGHT:NODES` with a heartbeat, serve `/metrics`, run the node's work, and stop on
 * SIGINT/SIGTERM within a bounded grace period (a second signal exits at once, one within a second of the first is
 * the same signal delivered twice: see `src/runtime/signals.ts`). Whatever happens, the node ends with
 * one line and an exit code, never a stack trace, and no child process outlives it. A node that allows it may share
 * its process with others of its kind (`node_group.ts`): the process owns the signals and the children, each node
 * the rest of the above.
 *
 * @example
 * ```ts
 * import { runAnyBusNode } from "./run_node.ts";
 * import { SUBSCRIBE_TOPIC } from "./common_flags.ts";
 * await runAnyBusNode({
 *   command: "echo", type: "EchoNode", description: "prints messages", flags: { ...SUBSCRIBE_TOPIC },
 *   async run(ctx) { await new Promise((r) => ctx.signal.addEventListener("abort", r)); },
 * });
 * ```
 * @module
 */

import { connectBus } from "../bus/connect.ts";
import { RedisBus } from "../bus/redis.ts";
import { RedisBackend } from "../bus/redis_backend/mod.ts";
import { selectBus } from "../bus/select.ts";
import type { Bus } from "../bus/types.ts";
import { Snowflake } from "../bus/snowflake.ts";
import { Backoff, delay } from "../runtime/async.ts";
import { killAllChildren, stopAllChildren } from "../runtime/children.ts";
import { COMMON_FLAGS } from "./common_flags.ts";
import { findConfigPath, loadConfigFile } from "../runtime/config.ts";
import { denoEnv, deviceName, type EnvReader } from "../runtime/env.ts";
import {
  errorMessage,
  exitCodeOf,
  FatalError,
  isRedisPermissionError,
  UsageError,
} from "../runtime/errors.ts";
import { type FlagSpecs, type FlagValues, HelpRequested, parseFlags } from "../runtime/flags.ts";
import { HealthServer, type Readiness } from "../runtime/health_server.ts";
import { type LogFormat, Logger, type LogLevel } from "../runtime/log.ts";
import { loaderVarsWarning } from "../runtime/spawn_env.ts";
import { Metrics } from "../runtime/metrics.ts";
import { onShutdownSignals, REPEAT_WINDOW_MS, signalExitCode } from "../runtime/signals.ts";
import { NodeRegistration } from "../bus/registry.ts";
import { checkGroup, splitGroup } from "./node_group.ts";

/** The flags of a node: its own plus {@linkcode COMMON_FLAGS}. */
export type NodeFlags<T extends FlagSpecs> = FlagValues<typeof COMMON_FLAGS & T>;

/** What a node's `run` receives. */
export interface NodeContext<T extends FlagSpecs> {
  flags: NodeFlags<T>;
  log: Logger;
  metrics: Metrics;
  /** The bus, whichever back end carries it. */
  bus: Bus;
  device: string;
  /** One id generator per process, so ids never repeat. */
  ids: Snowflake;
  /** Aborted on the first SIGINT/SIGTERM: finish, flush and return. */
  signal: AbortSignal;
  /** The node's part of `/readyz` (the runtime adds Redis connectivity). */
  setReadiness(fn: () => Readiness): void;
  /** Reports an unexpected error: stops the node or logs and continues, per `--action-on-error`. */
  reportError(err: unknown, what: string): void;
  env: EnvReader;
}

/** A node: its flags and its work. */
export interface NodeDefinition<T extends FlagSpecs> {
  /** Program name for usage and logs, e.g. `rtsp`. */
  command: string;
  /** The `type` shown in `MSIGHT:NODES` (MSight uses its class names). */
  type: string;
  description: string;
  flags: T;
  /** `data_type` of the topic the node publishes/subscribes (registered in `MSIGHT:TOPICS` if absent). */
  publishDataType?: string;
  subscribeDataType?: string;
  /** Cross-flag checks; throw {@linkcode UsageError}. */
  validate?(flags: NodeFlags<T>): void;
  /** Several of these nodes may share one process, their flags separated by `--next` (`node_group.ts`). */
  groupable?: boolean;
  /** The node's work; returns once `ctx.signal` is aborted and everything is flushed. */
  run(ctx: NodeContext<T>): Promise<void>;
}

/** Options mostly for tests and the launcher. */
export interface RunOptions {
  argv?: readonly string[];
  env?: EnvReader;
  /** Instead of exiting, return the exit code (tests). */
  noExit?: boolean;
}

/**
 * Runs a node on whichever back end is selected (standalone Redis, Redis Cluster, NATS) to completion and exits the
 * process with its exit code (0 after a graceful stop). With `def.groupable`, a command line of several nodes
 * separated by `--next` runs them all in this process (`node_group.ts`).
 */
export async function runAnyBusNode<T extends FlagSpecs>(
  def: NodeDefinition<T>,
  opts: RunOptions = {},
): Promise<number> {
  const code = await runProcess(def, opts);
  if (!opts.noExit) {
    killAllChildren("SIGKILL");
    Deno.exit(code);
  }
  return code;
}

/** One node of the process, parsed, with its logger. */
interface Member<T extends FlagSpecs> {
  flags: NodeFlags<T>;
  log: Logger;
  device: string;
}

/** The process's stop, shared by its nodes: aborted on the first SIGINT/SIGTERM, `sig` the signal. */
interface ProcessStop {
  signal: AbortSignal;
  sig?: Deno.Signal;
}

/** Restart delays of a node that ended with an error while the other nodes of its process run on, seconds. */
const MEMBER_BACKOFF = { initial: 1, max: 30 };

async function runProcess<T extends FlagSpecs>(def: NodeDefinition<T>, opts: RunOptions): Promise<number> {
  const argv = opts.argv ?? Deno.args;
  const env = opts.env ?? denoEnv;
  const specs = { ...COMMON_FLAGS, ...def.flags };
  const parsed: NodeFlags<T>[] = [];
  try {
    const parts = def.groupable ? splitGroup(argv) : [argv];
    for (const [i, part] of parts.entries()) {
      try {
        const configPath = findConfigPath(part);
        const preset = configPath ? await loadConfigFile(configPath, specs) : {};
        const flags = parseFlags(specs, part, def.command, preset, def.description, env) as NodeFlags<T>;
        def.validate?.(flags);
        parsed.push(flags);
      } catch (err) {
        // Which node of a group is wrong, when there are several.
        if (parts.length > 1 && err instanceof UsageError) {
          const why = err.message.replace(new RegExp(`^${def.command}: (error: )?`), "");
          throw new UsageError(`${def.command}: error: node ${i + 1} of ${parts.length}: ${why}`);
        }
        throw err;
      }
    }
    const common = (f: NodeFlags<T>) => f as NodeFlags<Record<never, never>>;
    checkGroup(parsed.map((f) => ({ name: common(f).name, metricsPort: common(f).metricsPort })));
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(err.text);
      return 0;
    }
    return fail(err, def.command);
  }

  const members = parsed.map((f) => memberOf(f, env));
  const controller = new AbortController();
  const stop: ProcessStop = { signal: controller.signal };
  const signals = onShutdownSignals({
    onStop(sig) {
      stop.sig = sig;
      controller.abort();
    },
    onRepeat(sig) {
      for (const m of members) m.log.warn(`received ${sig} again: exiting now`);
      killAllChildren("SIGKILL");
      Deno.exit(signalExitCode(sig));
    },
    // The group's signal and its copy from `deno task` or a shell: one signal (see src/runtime/signals.ts).
    onDuplicate(sig) {
      for (const m of members) {
        m.log.debug(`received ${sig} again within ${REPEAT_WINDOW_MS} ms: the same signal`);
      }
    },
  });
  try {
    if (members.length === 1) return await runNode(def, members[0], env, stop);
    const codes = await Promise.all(members.map((m) => runMember(def, m, env, stop)));
    return Math.max(...codes);
  } finally {
    // Each node's modules stop their children in order; any still running now is ended here (a leak: say so).
    const left = await stopAllChildren();
    if (left > 0) members[0].log.warn(`stopped ${left} child process(es) left running at exit`);
    // Last: a duplicate of the stop signal arriving during the cleanup above must not kill the process midway.
    signals.dispose();
  }
}

/** A node's logger and device name from its flags; warnings about the environment go to its log. */
function memberOf<T extends FlagSpecs>(flags: NodeFlags<T>, env: EnvReader): Member<T> {
  const f = flags as NodeFlags<Record<never, never>>;
  const earlyWarnings: string[] = [];
  const device = deviceName(env, (m) => earlyWarnings.push(m));
  const log = new Logger({
    device,
    node: f.name,
    level: f.loggingLevel as LogLevel,
    format: f.logFormat as LogFormat,
  });
  for (const w of earlyWarnings) log.warn(w);
  const ldWarning = loaderVarsWarning("ffmpeg"); // a node that may run ffmpeg, where CUDA may need LD_LIBRARY_PATH
  if (ldWarning) log.warn(ldWarning);
  return { flags, log, device };
}

/**
 * One node of a group: run again after an error, with backoff, while the process runs, so one node's failure
 * (say, a bad `--ffmpeg` for one camera) never stops the others. Alone in its process, a node ends the process
 * instead, and whatever supervises it restarts it.
 */
async function runMember<T extends FlagSpecs>(
  def: NodeDefinition<T>,
  member: Member<T>,
  env: EnvReader,
  stop: ProcessStop,
): Promise<number> {
  const log = member.log;
  const backoff = new Backoff(MEMBER_BACKOFF);
  while (true) {
    const startedAt = Date.now();
    const code = await runNode(def, member, env, stop);
    if (stop.signal.aborted || code === 0) return code;
    // A run longer than twice the longest delay was a healthy one: the next failure starts the delays afresh.
    if (Date.now() - startedAt > MEMBER_BACKOFF.max * 2000) backoff.reset();
    const wait = backoff.next();
    log.error(
      `ended with exit code ${code}: starting it again in ${wait.toFixed(1)} s (the other nodes of this ` +
        `process run on)`,
    );
    await delay(wait * 1000, stop.signal);
    // Stopped while waiting: nothing of this node is left running, so the stop itself went well.
    if (stop.signal.aborted) {
      log.info(`received ${stop.sig ?? "a stop"}: stopping (it was waiting to start again)`);
      log.info("stopped");
      return 0;
    }
  }
}

/** One node's life from connecting to the bus to leaving it; the process owns signals and children. */
async function runNode<T extends FlagSpecs>(
  def: NodeDefinition<T>,
  member: Member<T>,
  env: EnvReader,
  stop: ProcessStop,
): Promise<number> {
  const { flags, log, device } = member;
  const f = flags as NodeFlags<Record<never, never>>;

  const metrics = new Metrics();
  const started = Date.now();
  metrics.gauge("uptime_seconds", "Seconds since the node started", () => (Date.now() - started) / 1000);
  metrics.gauge("node_info", "Constant 1, labelled with the node's identity").set(1, {
    node: f.name,
    device,
    type: def.type,
  });
  // The process's own memory, read at each scrape (a few µs): where a node's RSS goes (V8 heap vs buffers held
  // outside it, such as frames) without attaching a profiler. ffmpeg children are not included; nodes started
  // together with --next share one process and report the same figures.
  metrics.gauge(
    "process_resident_memory_bytes",
    "Resident set size of the node's process (shared by the nodes of one process)",
    () => Deno.memoryUsage().rss,
  );
  metrics.gauge("heap_used_bytes", "V8 heap in use", () => Deno.memoryUsage().heapUsed);
  metrics.gauge("heap_total_bytes", "V8 heap reserved", () => Deno.memoryUsage().heapTotal);
  metrics.gauge(
    "external_memory_bytes",
    "Memory outside the V8 heap held by JavaScript objects (ArrayBuffers: frames, segments)",
    () => Deno.memoryUsage().external,
  );

  const controller = new AbortController();
  let bus: Bus | undefined;
  let registration: NodeRegistration | undefined;
  let health: HealthServer | undefined;
  let nodeReadiness: () => Readiness = () => ({ ok: true });
  let errorExit: number | undefined;
  let redisUser: string | undefined;

  const onProcessStop = () => {
    log.info(
      `received ${stop.sig ?? "a stop"}: stopping (flushing for up to ${f.shutdownGrace} s; send it again ` +
        `after ${REPEAT_WINDOW_MS / 1000} s to exit at once)`,
    );
    controller.abort();
  };
  if (stop.signal.aborted) onProcessStop();
  else stop.signal.addEventListener("abort", onProcessStop, { once: true });
  try {
    // MSight's back-end switch: a node must not run on Redis when NATS (or Kafka) was asked for.
    const selection = selectBus({ busUrl: f.busUrl, redisUrl: f.redisUrl, env });
    const flagsRecord = flags as Record<string, unknown>;
    const publishTopic = typeof flagsRecord.publishTopic === "string" ? flagsRecord.publishTopic : null;
    const subscribeTopic = typeof flagsRecord.subscribeTopic === "string" ? flagsRecord.subscribeTopic : null;
    const connectOpts = {
      name: f.name,
      connectTimeoutS: f.redisConnectTimeout,
      publisher: publishTopic !== null,
    };
    let redis: RedisBus | undefined;
    if (selection.backend === "redis") {
      // `--redis-url`, else a redis:// bus URL, else MSight's variables (select.ts).
      const redisSettings = selection.redis;
      log.addSecret(redisSettings.password);
      redisUser = redisSettings.username;
      redis = await RedisBus.connect(redisSettings, log, connectOpts);
      const connected = redis;
      bus = new RedisBackend(connected);
      metrics.gauge(
        "redis_connected",
        "1 while the Redis connection is ready",
        () => (connected.ready ? 1 : 0),
      );
      connected.onRefused = (err) => {
        log.critical(refusedLine(err, redisUser));
        errorExit = 1;
        controller.abort();
      };
    } else {
      if (selection.backend === "redis-cluster") redisUser = selection.cluster.username;
      bus = await connectBus(selection, log, connectOpts);
      const connected = bus;
      metrics.gauge("bus_connected", "1 while the bus is usable", () => (connected.ready ? 1 : 0));
    }
    const registry = bus.registry;

    const registerTopics = async () => {
      if (publishTopic && def.publishDataType) {
        await registry.registerTopic({
          name: publishTopic,
          description: null,
          data_type: def.publishDataType,
        });
      }
      if (subscribeTopic && def.subscribeDataType) {
        await registry.registerTopic({
          name: subscribeTopic,
          description: null,
          data_type: def.subscribeDataType,
        });
      }
    };
    await registerTopics();
    // A Redis restart empties MSIGHT:TOPICS (the heartbeat rewrites only MSIGHT:NODES): register again on reconnect.
    redis?.onReconnect(() =>
      void registerTopics().catch((err) =>
        log.warn(`could not register the topics again after a reconnect: ${errorMessage(err)}`)
      )
    );
    const client = redis?.client;
    // On Redis, the registry's own connection; elsewhere the bus as a whole.
    const registryReady = client ? () => client.status === "ready" : () => bus?.ready === true;
    registration = new NodeRegistration(registry, registryReady, {
      name: f.name,
      device,
      type: def.type,
      publishTopic,
      subscribeTopic,
      heartbeatIntervalS: f.heartbeatUpdateInterval,
    }, log);
    await registration.register();
    registration.startHeartbeat(f.heartbeatUpdateInterval);

    if (f.metricsPort > 0) {
      health = HealthServer.start({
        host: f.metricsHost,
        port: f.metricsPort,
        metrics,
        ready: () => {
          if (!bus?.ready) {
            return {
              ok: false,
              reason: bus?.kind === "redis" ? "Redis is not connected" : `${bus?.kind} is not connected`,
            };
          }
          return nodeReadiness();
        },
      });
      log.info(`serving /metrics, /healthz and /readyz on http://${f.metricsHost}:${health.port}`);
    }

    const ctx: NodeContext<T> = {
      flags,
      bus,
      log,
      metrics,
      device,
      ids: new Snowflake(Snowflake.workerFor(`${device}/${f.name}/${Deno.pid}`)),
      signal: controller.signal,
      setReadiness: (fn) => (nodeReadiness = fn),
      reportError: (err, what) => {
        metrics.counter("internal_errors_total", "Unexpected errors inside the node").inc();
        if (f.actionOnError === "stop") {
          log.error(`${what}: ${errorMessage(err)} (stopping: --action-on-error stop)`);
          errorExit = 1;
          controller.abort();
        } else {
          log.error(`${what}: ${errorMessage(err)} (continuing: --action-on-error continue)`);
        }
      },
      env,
    };
    await registration.setStatus("RUNNING");
    const where = bus.kind === "redis" ? "Redis" : bus.kind === "nats" ? "NATS" : "Redis Cluster";
    log.info(`${def.command} node ${f.name} started on device ${device} (${where} ${bus.display})`);

    const work = def.run(ctx);
    // The grace period starts at the first signal; past it we exit without waiting for the work.
    const graceExpired = new Promise<"grace">((resolve) => {
      controller.signal.addEventListener("abort", () => {
        const t = setTimeout(() => resolve("grace"), f.shutdownGrace * 1000);
        work.finally(() => clearTimeout(t));
      }, { once: true });
    });
    const outcome = await Promise.race([work.then(() => "done" as const), graceExpired]);
    if (outcome === "grace") {
      log.error(`did not stop within --shutdown-grace ${f.shutdownGrace} s: exiting anyway`);
      errorExit = 1;
    }
    if (!controller.signal.aborted && errorExit === undefined) log.info("work finished");
    return errorExit ?? 0;
  } catch (err) {
    if (isRedisPermissionError(err)) {
      if (errorExit === undefined) log.critical(refusedLine(err, redisUser));
      return 1;
    }
    return fail(err, def.command, log);
  } finally {
    stop.signal.removeEventListener("abort", onProcessStop);
    await registration?.unregister();
    await health?.close();
    await bus?.close();
    if (stop.signal.aborted || errorExit !== undefined) log.info("stopped");
  }
}

/** One line for an ACL refusal: what Redis refused, to whom, and where the right permissions are written. */
function refusedLine(err: unknown, user: string | undefined): string {
  return `${errorMessage(err)} (Redis user ${user ?? "default"} lacks this permission: the README's ` +
    `"Security" section gives each node's ACL SETUSER line)`;
}

function fail(err: unknown, prog: string, log?: Logger): number {
  if (err instanceof UsageError) {
    printLine(err.message.startsWith(prog) ? err.message : `${prog}: error: ${err.message}`);
  } else if (err instanceof FatalError) {
    if (log) log.critical(err.message);
    else printLine(`${prog}: error: ${err.message}`);
  } else {
    const msg = `unexpected error: ${errorMessage(err)}`;
    if (log) log.critical(msg);
    else printLine(`${prog}: ${msg}`);
  }
  return exitCodeOf(err);
}

function printLine(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}
