/**
 * The pipeline file of `deno task up pipeline.yaml`: one YAML file describes a whole pipeline. It is read,
 * checked (each node's flags with that node's own specs and cross-flag checks) and resolved completely before
 * anything starts; a bad file gets one line naming the file, the key path and the line, e.g. `pipeline.yaml:
 * nodes[2].flags.fps: --fps 0 is invalid: expected a number > 0 (line 14)`. The schema: the README's "Running
 * a whole pipeline"; every flag with its default: examples/reference.yaml.
 *
 * @example
 * ```ts
 * import { loadPipeline } from "./pipeline_config.ts";
 * const p = await loadPipeline("examples/tutorial_dumper.yaml");
 * for (const n of p.nodes) console.log(n.name, n.type, n.argv.join(" "));
 * ```
 * @module
 */

import { LineCounter, parseDocument } from "yaml";
import { busEnvConflict, type BusPlan, busPlan } from "./bus_plan.ts";
import { COMMON_FLAGS } from "../node/common_flags.ts";
import { RTSP_FLAGS } from "../node/rtsp_flags.ts";
import { denoEnv } from "../runtime/env.ts";
import { redisSettingsFromUrl } from "../runtime/env.ts";
import { errorMessage, UsageError } from "../runtime/errors.ts";
import { nearest } from "../runtime/flags.ts";
import { type EnvLookup, substituteEnv } from "./env_subst.ts";
import { formatKeyPath, type KeyPath, lineOf, PipelineError } from "./key_path.ts";
import { flagArgv, FlagSet } from "./node_flags.ts";
import { type FlagRecord, NODE_KINDS, PIPELINE_NODE_TYPES, type PipelineNodeType } from "./node_kinds.ts";
import { DEFAULT_CAMERAS_PER_PROCESS } from "./process_plan.ts";

/** Where the nodes find Redis: an existing one, or a private one that `up` starts and stops. */
export type RedisPlan = { mode: "url"; url: string } | { mode: "start"; port?: number };

/** One node of the pipeline, resolved: what to run and how. */
export interface PipelineNode {
  /** Unique in the file: the log prefix. */
  name: string;
  type: PipelineNodeType;
  /** Where it is defined (`nodes[2]`, `cameras[0]`). */
  at: KeyPath;
  /** The flags the file sets (spec keys); the node applies its defaults. */
  flags: FlagRecord;
  /** The flags it will run with, defaults included. */
  effective: FlagRecord;
  /** Its command line (`--long=value` each). */
  argv: string[];
  /** Environment from the file (`env:` and the node's own), on top of the launcher's. */
  env: Record<string, string>;
  restart: boolean;
  /** Seconds it gets to stop before SIGKILL: its `--shutdown-grace` and a margin. */
  graceS: number;
}

/** A checked pipeline file. */
export interface Pipeline {
  /** The file as named by the user (prefix of every message about it). */
  label: string;
  redis?: RedisPlan;
  /** The back end of every node (`bus:`); without it, the nodes' environment (and `redis:`) chooses. */
  bus?: BusPlan;
  device?: string;
  /** Environment of every node. */
  env: Record<string, string>;
  /** In start (and stop) order. */
  nodes: PipelineNode[];
  /** RTSP nodes run per process (`cameras_per_process`, see `process_plan.ts`); 1: a process each. */
  camerasPerProcess: number;
  /** Things that are allowed but look wrong (a topic nobody in the file publishes). */
  warnings: string[];
  /** What `up` chose for the nodes (the `--max-fps` it gives an rtsp node), said once at start. */
  notes: string[];
}

const TOP_KEYS = ["redis", "device", "bus", "env", "defaults", "cameras", "nodes", "cameras_per_process"];
const NODE_KEYS = ["name", "node", "flags", "restart", "env"];
const CAMERA_KEYS = ["name", "url", "topic", "flags", "restart", "env"];
const REDIS_KEYS = ["url", "start", "port"];
/** Names the launcher uses for its own lines and processes. */
const RESERVED_NAMES = ["up", "redis"];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Seconds past a node's own `--shutdown-grace` before it is killed (it exits by itself at its grace). */
const GRACE_MARGIN_S = 5;

/**
 * Reads and checks a pipeline file; throws a one-line {@linkcode UsageError} (exit 2) when it is bad.
 *
 * @example
 * ```ts
 * const p = await loadPipeline("pipeline.yaml", (k) => Deno.env.get(k));
 * ```
 */
export async function loadPipeline(path: string, env: EnvLookup = denoEnv): Promise<Pipeline> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "no such file" : errorMessage(err);
    throw new UsageError(`${path}: cannot read it (${why})`);
  }
  return parsePipeline(text, path, env);
}

/**
 * Like {@linkcode loadPipeline}, from text; `label` names the file in messages.
 *
 * @example
 * ```ts
 * parsePipeline("nodes: []", "inline.yaml", () => undefined); // throws: nodes: expected at least one node ...
 * ```
 */
export function parsePipeline(text: string, label: string, env: EnvLookup): Pipeline {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
    throw new UsageError(`${label}: not valid YAML: ${e.message.split("\n")[0]} (line ${line})`);
  }
  try {
    return { label, ...resolve(substituteEnv(doc.toJS(), env), env, label) };
  } catch (err) {
    if (!(err instanceof PipelineError)) throw err;
    const line = lineOf(doc.contents, lc, err.path);
    throw new UsageError(`${label}: ${err.message}${line ? ` (line ${line})` : ""}`);
  }
}

type Obj = Record<string, unknown>;

function mapping(value: unknown, path: KeyPath, what: string): Obj {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new PipelineError(path, `expected ${what}`);
  }
  return value as Obj;
}

function onlyKeys(obj: Obj, allowed: readonly string[], path: KeyPath): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    const hint = nearest(key, allowed);
    throw new PipelineError(
      [...path, key],
      `unknown key${hint ? ` (did you mean ${hint}?)` : `: expected ${allowed.join(", ")}`}`,
    );
  }
}

function text(value: unknown, path: KeyPath, what: string): string {
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "number") return String(value);
  throw new PipelineError(path, `expected ${what}`);
}

function bool(value: unknown, path: KeyPath, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "boolean") return value;
  // A `${VAR}` value arrives as text.
  if (typeof value === "string" && /^(true|false)$/i.test(value)) return value.toLowerCase() === "true";
  throw new PipelineError(path, `expected true or false, got ${JSON.stringify(value)}`);
}

function envMap(value: unknown, path: KeyPath): Record<string, string> {
  if (value === undefined || value === null) return {};
  const obj = mapping(value, path, "a mapping of environment variable names to values");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!ENV_NAME.test(k)) throw new PipelineError([...path, k], "not a valid environment variable name");
    if (v !== null && typeof v === "object") {
      throw new PipelineError([...path, k], "expected a single value (text, number or true/false)");
    }
    out[k] = v === null || v === undefined ? "" : String(v);
  }
  return out;
}

function redisPlan(value: unknown): RedisPlan | undefined {
  if (value === undefined || value === null) return undefined;
  const checkUrl = (url: string, path: KeyPath) => {
    try {
      redisSettingsFromUrl(url, "redis url");
    } catch (err) {
      throw new PipelineError(path, errorMessage(err));
    }
    return { mode: "url" as const, url };
  };
  if (typeof value === "string") return checkUrl(value, ["redis"]);
  const obj = mapping(value, ["redis"], "a Redis URL, {url: redis://...}, or {start: true}");
  onlyKeys(obj, REDIS_KEYS, ["redis"]);
  const start = bool(obj.start, ["redis", "start"], false);
  if (start && obj.url !== undefined) {
    throw new PipelineError(["redis", "url"], "give either url (an existing Redis) or start: true, not both");
  }
  if (!start) {
    if (obj.port !== undefined) throw new PipelineError(["redis", "port"], "port is for start: true");
    if (obj.url === undefined) {
      throw new PipelineError(["redis"], "expected url: redis://... (an existing Redis) or start: true");
    }
    return checkUrl(text(obj.url, ["redis", "url"], "a redis:// URL"), ["redis", "url"]);
  }
  if (obj.port === undefined || obj.port === null) return { mode: "start" };
  const port = Number(obj.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PipelineError(
      ["redis", "port"],
      `${JSON.stringify(obj.port)} is not a port: expected 1 to 65535`,
    );
  }
  return { mode: "start", port };
}

/** `cameras_per_process:` a whole number ≥ 1, {@linkcode DEFAULT_CAMERAS_PER_PROCESS} when absent. */
function perProcess(value: unknown): number {
  if (value === undefined || value === null) return DEFAULT_CAMERAS_PER_PROCESS;
  const n = Number(value);
  if (typeof value === "boolean" || !Number.isInteger(n) || n < 1) {
    const given = JSON.stringify(value);
    throw new PipelineError(
      ["cameras_per_process"],
      `${given} is not a camera count: expected a whole number >= 1 (1: a process per camera)`,
    );
  }
  return n;
}

/** `defaults:` checked once (even for types no node uses), as raw mappings to read into each node's flags. */
function readDefaults(value: unknown): Partial<Record<"all" | PipelineNodeType, Obj>> {
  if (value === undefined || value === null) return {};
  const obj = mapping(value, ["defaults"], `a mapping with keys all, ${PIPELINE_NODE_TYPES.join(", ")}`);
  onlyKeys(obj, ["all", ...PIPELINE_NODE_TYPES], ["defaults"]);
  const out: Partial<Record<"all" | PipelineNodeType, Obj>> = {};
  for (const [key, flags] of Object.entries(obj)) {
    const path = ["defaults", key];
    const type = key as "all" | PipelineNodeType;
    const set = new FlagSet(
      type === "all" ? COMMON_FLAGS : NODE_KINDS[type].specs,
      type,
    );
    set.read(flags, path);
    if (set.has("name")) throw new PipelineError([...path, "name"], "a node name cannot be a default");
    out[type] = (flags ?? {}) as Obj;
  }
  return out;
}

interface Entry {
  at: KeyPath;
  raw: Obj;
  type: PipelineNodeType;
  camera: boolean;
}

function entries(top: Obj): Entry[] {
  const out: Entry[] = [];
  const list = (key: "cameras" | "nodes"): unknown[] => {
    const v = top[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      throw new PipelineError([key], `expected a list (each item starting with "- name: ...")`);
    }
    return v;
  };
  list("cameras").forEach((c, i) => {
    const raw = mapping(c, ["cameras", i], "a camera: {name: ..., url: rtsp://...}");
    onlyKeys(raw, CAMERA_KEYS, ["cameras", i]);
    out.push({ at: ["cameras", i], raw, type: "rtsp", camera: true });
  });
  list("nodes").forEach((n, i) => {
    const at = ["nodes", i];
    const raw = mapping(n, at, `a node: {name: ..., node: ${PIPELINE_NODE_TYPES.join("|")}, flags: {...}}`);
    onlyKeys(raw, NODE_KEYS, at);
    if (raw.node === undefined) {
      throw new PipelineError([...at, "node"], `missing: expected one of ${PIPELINE_NODE_TYPES.join(", ")}`);
    }
    const type = String(raw.node);
    if (!(PIPELINE_NODE_TYPES as readonly string[]).includes(type)) {
      const hint = nearest(type, PIPELINE_NODE_TYPES);
      throw new PipelineError(
        [...at, "node"],
        `${type} is not a node type: expected one of ${PIPELINE_NODE_TYPES.join(", ")}${
          hint ? ` (did you mean ${hint}?)` : ""
        }`,
      );
    }
    out.push({ at, raw, type: type as PipelineNodeType, camera: false });
  });
  if (out.length === 0) {
    throw new PipelineError(
      ["nodes"],
      `expected at least one node (${PIPELINE_NODE_TYPES.join(", ")}) or camera`,
    );
  }
  return out;
}

function resolveNode(
  e: Entry,
  defaults: Partial<Record<"all" | PipelineNodeType, Obj>>,
  pipelineEnv: Record<string, string>,
  launcherEnv: EnvLookup,
): PipelineNode {
  const { at, raw, type } = e;
  const name = text(raw.name, [...at, "name"], "a name (text without spaces)");
  if (/\s/.test(name)) {
    throw new PipelineError([...at, "name"], `"${name}" has spaces: expected a name without`);
  }
  if (RESERVED_NAMES.includes(name)) {
    throw new PipelineError([...at, "name"], `"${name}" is the launcher's own: choose another name`);
  }
  const kind = NODE_KINDS[type];
  const set = new FlagSet(kind.specs, type);
  set.read(defaults.all, ["defaults", "all"]);
  set.read(defaults[type], ["defaults", type]);
  if (e.camera) {
    const flags = raw.flags ?? {};
    for (const [given, key] of [["url", "url"], ["topic", "publishTopic"]] as const) {
      const clash = Object.keys(mapping(flags, [...at, "flags"], "a mapping of flag names to values"))
        .find((k) => set.keyOf(k) === key);
      if (clash) {
        throw new PipelineError([...at, "flags", clash], `give it once, as ${formatKeyPath([...at, given])}`);
      }
    }
    set.set("url", raw.url ?? null, [...at, "url"]);
    set.set("publish-topic", raw.topic ?? "rtsp_topic", [...at, "topic"]);
    set.set("sensor-name", name, [...at, "name"]);
  }
  set.read(raw.flags, [...at, "flags"]);
  if (!set.has("name")) set.set("name", name, [...at, "name"]);
  const env = { ...pipelineEnv, ...envMap(raw.env, [...at, "env"]) };
  if (e.camera && !set.has("url")) {
    throw new PipelineError([...at, "url"], "missing: expected rtsp://HOST/PATH");
  }
  set.requireAll([...at, "flags"], (k) => env[k] ?? launcherEnv(k));
  const effective = set.effective();
  const problem = kind.check(effective);
  if (problem) throw new PipelineError(set.pathOf(problem.flag) ?? [...at, "flags"], problem.message);
  return {
    name,
    type,
    at,
    flags: set.values(),
    effective,
    argv: flagArgv(kind.specs, set.values()),
    env,
    restart: bool(raw.restart, [...at, "restart"], true),
    graceS: Number(effective.shutdownGrace) + GRACE_MARGIN_S,
  };
}

/** Subscriptions to topics that no node of the file publishes: allowed (MSight's nodes may), but often a typo. */
function topicWarnings(nodes: PipelineNode[]): string[] {
  const published = [
    ...new Set(nodes.map((n) => n.effective.publishTopic).filter((t) => typeof t === "string")),
  ];
  const out: string[] = [];
  for (const n of nodes) {
    const topic = n.effective.subscribeTopic;
    if (typeof topic !== "string" || published.includes(topic)) continue;
    const hint = nearest(topic, published as string[]);
    out.push(
      `${formatKeyPath([...n.at, "flags", "subscribe-topic"])}: no node of this file publishes on ${topic}` +
        (hint ? ` (did you mean ${hint}?)` : ": it must come from elsewhere"),
    );
  }
  return out;
}

/** The nodes of the file reading `topic` when there are some and all are aggregators (what `up` may size a source for). */
function aggregatorsReading(nodes: PipelineNode[], topic: unknown): PipelineNode[] | undefined {
  const readers = nodes.filter((n) => n.effective.subscribeTopic === topic);
  return readers.length > 0 && readers.every((n) => n.type === "aggregator") ? readers : undefined;
}

/** Gives an rtsp node a flag the file did not set: its values, effective values and command line. */
function setRtspFlag(src: PipelineNode, key: "maxFps" | "frameStreamMaxAge", value: number): void {
  src.flags = { ...src.flags, [key]: value };
  src.effective = { ...src.effective, [key]: value };
  src.argv = flagArgv(NODE_KINDS.rtsp.specs, src.flags);
}

/**
 * Thinning at the source when its consumers are known: an rtsp node whose file sets no `max-fps` gets the highest
 * rate an aggregator of the file reading its topic uses (`--fps` × (`--gap` + 1), times the node's own `--gap` + 1),
 * so the frames those aggregators would not keep are dropped in ffmpeg before JPEG encoding (the node's CPU ~40%
 * less at 25 fps for `--fps 10`). Only when every node of the file that reads the topic is an aggregator; a reader
 * outside the file that needs every frame is the user's to declare (`max-fps: 0`). Returns one note per node set.
 */
function thinSources(nodes: PipelineNode[]): string[] {
  const notes: string[] = [];
  for (const src of nodes) {
    if (src.type !== "rtsp" || src.flags.maxFps !== undefined) continue;
    const topic = src.effective.publishTopic;
    const readers = aggregatorsReading(nodes, topic);
    if (!readers) continue;
    const need = Math.max(...readers.map((n) => Number(n.effective.fps) * (Number(n.effective.gap) + 1)));
    const maxFps = need * (Number(src.effective.gap) + 1);
    if (!(maxFps > 0) || !Number.isFinite(maxFps)) continue;
    setRtspFlag(src, "maxFps", maxFps);
    const by = readers.map((n) => `${n.name} (--fps ${n.effective.fps})`).join(", ");
    notes.push(
      `${src.name}: --max-fps ${maxFps}, as ${by} reads ${topic} (set max-fps in the file to choose; 0: every frame)`,
    );
  }
  return notes;
}

/** Seconds allowed for a killed aggregator to be reading again: the supervisor's restarts (1, 2, 4 s...) and starts. */
const RESTART_ALLOWANCE_S = 15;

/**
 * The durable frame stream sized to its readers. An rtsp node whose file sets no `frame-stream-max-age` keeps each
 * frame as long as the aggregators reading its topic may need it after a crash: their longest segment
 * (`--buffer-size` ÷ `--fps` seconds of capture), plus `--max-idle` (a segment may stay open that long after its
 * last frame), plus {@linkcode RESTART_ALLOWANCE_S}. The tutorial's aggregator (100 frames at 10 fps, 5 s) gives
 * the flag's default, 30 s, so nothing changes there; minute-long segments give 80 s, where 30 would lose the
 * open segment's first frames to a crash; 2-second ones give 22 s, and Redis holds a quarter less. When every
 * reader takes plain pub/sub (`--transport pubsub`), nobody reads the stream: 0 (off). Only when every node of the
 * file that reads the topic is an aggregator, as for {@linkcode thinSources}. Returns one note per node changed.
 */
function sizeFrameStreams(nodes: PipelineNode[]): string[] {
  const notes: string[] = [];
  const fallback = RTSP_FLAGS.frameStreamMaxAge.default;
  for (const src of nodes) {
    if (src.type !== "rtsp" || src.flags.frameStreamMaxAge !== undefined) continue;
    const topic = src.effective.publishTopic;
    const readers = aggregatorsReading(nodes, topic);
    if (!readers) continue;
    const durable = readers.filter((n) => n.effective.transport !== "pubsub");
    const age = durable.length === 0 ? 0 : Math.max(
      ...durable.map((n) =>
        Math.ceil(Number(n.effective.bufferSize) / Number(n.effective.fps) + Number(n.effective.maxIdle)) +
        RESTART_ALLOWANCE_S
      ),
    );
    if (!Number.isFinite(age) || age === fallback) continue;
    setRtspFlag(src, "frameStreamMaxAge", age);
    notes.push(
      age === 0
        ? `${src.name}: --frame-stream-max-age 0, as every reader of ${topic} takes pub/sub (--transport pubsub)`
        : `${src.name}: --frame-stream-max-age ${age}, for the longest segment of ${
          durable.map((n) => n.name).join(", ")
        } (--buffer-size ÷ --fps + --max-idle) and ${RESTART_ALLOWANCE_S} s to restart; set it in the file to choose`,
    );
  }
  return notes;
}

function resolve(doc: unknown, launcherEnv: EnvLookup, label: string): Omit<Pipeline, "label"> {
  const top = mapping(doc ?? null, [], `a mapping with keys ${TOP_KEYS.join(", ")}`);
  onlyKeys(top, TOP_KEYS, []);
  const redis = redisPlan(top.redis);
  const bus = busPlan(top.bus);
  if (bus && redis && bus.backend !== "nats") {
    throw new PipelineError(
      ["redis"],
      bus.backend === "redis"
        ? "bus: already names the Redis of every node: give it once"
        : "unused: on a Redis Cluster bus the cluster holds everything: remove redis:",
    );
  }
  const device = top.device === undefined || top.device === null
    ? undefined
    : text(top.device, ["device"], "a device name");
  const env = envMap(top.env, ["env"]);
  for (const k of bus ? Object.keys(env) : []) {
    const conflict = busEnvConflict(k, bus!.backend);
    if (conflict) throw new PipelineError(["env", k], conflict);
  }
  if (redis && env.REDIS_URL !== undefined) {
    throw new PipelineError(["env", "REDIS_URL"], "the Redis is set by redis: above; set it in one place");
  }
  if (device && env.MSIGHT_EDGE_DEVICE_NAME !== undefined) {
    throw new PipelineError(
      ["env", "MSIGHT_EDGE_DEVICE_NAME"],
      "the device is set by device: above; set it once",
    );
  }
  const camerasPerProcess = perProcess(top.cameras_per_process);
  const defaults = readDefaults(top.defaults);
  const nodes = entries(top).map((e) => resolveNode(e, defaults, env, launcherEnv));
  const byName = new Map<string, PipelineNode>();
  const byNodeName = new Map<string, PipelineNode>();
  const byPort = new Map<number, PipelineNode>();
  for (const n of nodes) {
    const other = byName.get(n.name);
    if (other) {
      throw new PipelineError([...n.at, "name"], `${n.name} is also the name of ${formatKeyPath(other.at)}`);
    }
    byName.set(n.name, n);
    // MSight's -n is the node's identity on Redis (and a sink's consumer group): two alike would share a group.
    const nodeName = String(n.effective.name);
    const twin = byNodeName.get(nodeName);
    if (twin) {
      throw new PipelineError(
        n.flags.name !== undefined ? [...n.at, "flags", "name"] : [...n.at, "name"],
        `node name ${nodeName} is also used by ${
          formatKeyPath(twin.at)
        }: node names must be unique on a Redis`,
      );
    }
    byNodeName.set(nodeName, n);
    // Separate processes or one (`cameras_per_process`), two servers cannot listen on one port.
    const port = Number(n.effective.metricsPort);
    const sharer = port > 0 ? byPort.get(port) : undefined;
    if (sharer) {
      throw new PipelineError(
        n.flags.metricsPort !== undefined ? [...n.at, "flags", "metrics-port"] : ["defaults"],
        `--metrics-port ${port} is also given to ${
          formatKeyPath(sharer.at)
        }: each node needs its own (0: none)`,
      );
    }
    if (port > 0) byPort.set(port, n);
  }
  // Stable: file order within a stage.
  nodes.sort((a, b) => NODE_KINDS[a.type].stage - NODE_KINDS[b.type].stage);
  const notes = [...thinSources(nodes), ...sizeFrameStreams(nodes)];
  return {
    redis,
    bus,
    device,
    env,
    nodes,
    camerasPerProcess,
    warnings: topicWarnings(nodes).map((w) => `${label}: ${w}`),
    notes,
  };
}
