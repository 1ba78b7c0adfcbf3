/**
 * The `bus:` section of a pipeline file: the back end of every node of the pipeline and its servers, as a URL
 * or as a back end with a list of servers, credentials best from the environment (`password: ${BUS_PASSWORD}`).
 * It becomes one URL that each node gets in its environment as `MSIGHT_BUS_URL` (with `MSIGHT_PUBSUB_BACKEND` to
 * match), never on a command line (visible in `ps`), and is logged without credentials. The URL is checked with
 * the nodes' own parser (`src/bus/select.ts`), so a file `up` accepts is one the nodes accept.
 *
 * ```yaml
 * bus:
 *   url: nats://h1:4222,h2:4222 # redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, nats://; or
 *   backend: redis-cluster # redis-cluster, nats or redis (one server), with
 *   servers: [h1:7000, h2:7000] # each server's host:port (a cluster's seed nodes), or "h1:7000,h2:7000"
 *   username: ${BUS_USER:-} # credentials for either form; empty: none
 *   password: ${BUS_PASSWORD:-}
 * ```
 *
 * @example
 * ```ts
 * import { busEnv, busPlan } from "./bus_plan.ts";
 * const plan = busPlan({ backend: "nats", servers: ["10.0.0.1:4222", "10.0.0.2:4222"] });
 * busEnv(plan!); // { MSIGHT_BUS_URL: "nats://10.0.0.1:4222,10.0.0.2:4222", MSIGHT_PUBSUB_BACKEND: "nats" }
 * ```
 * @module
 */

import { type EnvReader, REDIS_ENV_PREFIX } from "../runtime/env.ts";
import { errorMessage } from "../runtime/errors.ts";
import { nearest } from "../runtime/flags.ts";
import { NATS_ENV_PREFIX, selectBus, SUPPORTED_BACKENDS } from "../bus/select.ts";
import { type KeyPath, PipelineError } from "./key_path.ts";

/** The keys of `bus:`. */
export const BUS_KEYS = ["url", "backend", "servers", "username", "password"] as const;
/** The values of `bus.backend`. */
export const BUS_BACKENDS = ["redis-cluster", "nats", "redis"] as const;
/** One of {@linkcode BUS_BACKENDS}. */
export type BusBackend = typeof BUS_BACKENDS[number];

/** A checked `bus:` section. */
export interface BusPlan {
  backend: BusBackend;
  /** Every node's `MSIGHT_BUS_URL`, credentials included: never logged, never on a command line. */
  url: string;
  /** Where the bus is, without credentials, for log lines. */
  display: string;
}

const SCHEME: Record<BusBackend, string> = { "redis-cluster": "redis+cluster", nats: "nats", redis: "redis" };
const DEFAULT_PORT: Record<BusBackend, number> = { "redis-cluster": 6379, nats: 4222, redis: 6379 };
const BUS_SHAPE =
  "a bus URL (nats://h1:4222,h2:4222), {url: ...}, or {backend: ..., servers: [host:port, ...]}";

/**
 * Checks a `bus:` value (undefined when absent); throws {@linkcode PipelineError} at the key to blame.
 *
 * @example
 * ```ts
 * busPlan("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")?.display; // redis+cluster://10.0.0.1:7000,10.0.0.2:7000
 * busPlan({ backend: "kafka", servers: ["k1:9092"] }); // throws: bus.backend: kafka: the Kafka back end is not ...
 * ```
 */
export function busPlan(value: unknown): BusPlan | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return checked(value, ["bus"]);
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new PipelineError(["bus"], `expected ${BUS_SHAPE}`);
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if ((BUS_KEYS as readonly string[]).includes(key)) continue;
    const hint = nearest(key, BUS_KEYS);
    throw new PipelineError(
      ["bus", key],
      `unknown key${hint ? ` (did you mean ${hint}?)` : `: expected ${BUS_KEYS.join(", ")}`}`,
    );
  }
  const user = optionalText(obj.username, "username");
  const pass = optionalText(obj.password, "password");
  const given = (v: unknown) => v !== undefined && v !== null;
  if (given(obj.url)) {
    if (given(obj.backend) || given(obj.servers)) {
      throw new PipelineError(["bus", "url"], "give either url or backend with servers, not both");
    }
    if (typeof obj.url !== "string" || obj.url === "") {
      throw new PipelineError(["bus", "url"], "expected a URL such as nats://h1:4222,h2:4222");
    }
    const url = obj.url;
    const scheme = url.slice(0, Math.max(0, url.indexOf("://"))).toLowerCase();
    if ((user !== undefined || pass !== undefined) && /^[^/]*@/.test(url.slice(url.indexOf("://") + 3))) {
      throw new PipelineError(
        ["bus", "url"],
        "the URL has credentials and so do username/password: give them once",
      );
    }
    return checked(withCredentials(url, scheme.startsWith("nats") ? "nats" : "redis", user, pass), [
      "bus",
      "url",
    ]);
  }
  if (!given(obj.backend)) {
    throw new PipelineError(
      ["bus"],
      `expected url: ... or backend: (${BUS_BACKENDS.join(", ")}) with servers:`,
    );
  }
  const backend = String(obj.backend).toLowerCase();
  if (backend === "kafka") {
    throw new PipelineError(
      ["bus", "backend"],
      `kafka: the Kafka back end is not supported yet; supported back ends: ${SUPPORTED_BACKENDS}`,
    );
  }
  if (!(BUS_BACKENDS as readonly string[]).includes(backend)) {
    const hint = nearest(backend, BUS_BACKENDS);
    throw new PipelineError(
      ["bus", "backend"],
      `${JSON.stringify(obj.backend)} is not a back end: expected ${BUS_BACKENDS.join(", ")}${
        hint ? ` (did you mean ${hint}?)` : ""
      }`,
    );
  }
  const b = backend as BusBackend;
  const servers = serverList(obj.servers, b);
  if (b === "redis" && servers.length > 1) {
    throw new PipelineError(
      ["bus", "servers"],
      `a standalone Redis is one server (got ${servers.length}): for several use backend: redis-cluster`,
    );
  }
  const url = `${SCHEME[b]}://${servers.join(",")}`;
  return checked(withCredentials(url, b === "nats" ? "nats" : "redis", user, pass), ["bus", "servers"]);
}

/**
 * The environment every node of the pipeline gets for the bus.
 *
 * @example
 * ```ts
 * busEnv({ backend: "redis-cluster", url: "redis+cluster://h1:7000", display: "redis+cluster://h1:7000" });
 * // { MSIGHT_BUS_URL: "redis+cluster://h1:7000", MSIGHT_PUBSUB_BACKEND: "redis" }
 * ```
 */
export function busEnv(plan: BusPlan): Record<string, string> {
  return { MSIGHT_BUS_URL: plan.url, MSIGHT_PUBSUB_BACKEND: plan.backend === "nats" ? "nats" : "redis" };
}

/**
 * Why `env.<name>` may not be set beside `bus:` (the nodes would ignore it, or two places would say one thing);
 * undefined when it may. On NATS, `REDIS_URL` and `MSIGHT_REDIS_MESSAGE_BROKER_*` say where the registry is, and
 * `MSIGHT_NATS_*` other than the servers carry credentials and TLS: both allowed.
 *
 * @example
 * ```ts
 * busEnvConflict("MSIGHT_PUBSUB_BACKEND", "nats"); // "the back end is set by bus: above: set it in one place"
 * ```
 */
export function busEnvConflict(name: string, backend: BusBackend): string | undefined {
  if (name === "MSIGHT_BUS_URL" || name === "MSIGHT_PUBSUB_BACKEND") {
    return "the back end is set by bus: above: set it in one place";
  }
  if (backend === "nats" && name === NATS_ENV_PREFIX + "SERVERS") {
    return "the NATS servers are set by bus: above: set them in one place";
  }
  if (backend !== "nats" && (name === "REDIS_URL" || name.startsWith(REDIS_ENV_PREFIX))) {
    return `unused: the nodes reach Redis through bus: above (credentials: bus.username, bus.password)`;
  }
  return undefined;
}

/**
 * Where the registry (`MSIGHT:NODES`, `MSIGHT:TOPICS`) is with this bus, as the nodes will choose it from `env`
 * (their environment, the pipeline's `redis:` included): one phrase for the launcher's lines.
 *
 * @example
 * ```ts
 * registryPlace({ backend: "nats", url: "nats://h:4222", display: "nats://h:4222" }, () => undefined);
 * // "registry in JetStream key-value buckets MSIGHT_NODES, MSIGHT_TOPICS"
 * ```
 */
export function registryPlace(plan: BusPlan, env: EnvReader): string {
  if (plan.backend !== "nats") {
    return `registry on the same ${plan.backend === "redis" ? "Redis" : "cluster"}`;
  }
  const sel = selectBus({ busUrl: plan.url, env });
  if (sel.backend !== "nats" || sel.registry === "nats") {
    return "registry in JetStream key-value buckets MSIGHT_NODES, MSIGHT_TOPICS";
  }
  return `registry in Redis at ${sel.registry.redis.display}`;
}

function optionalText(value: unknown, key: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined; // `${VAR:-}` unset: none
  if (typeof value === "string" || typeof value === "number") return String(value);
  throw new PipelineError(["bus", key], "expected text (best `${VAR}`, from the environment)");
}

/** `scheme://user:pass@rest`, each part percent-encoded (the nodes decode them). */
function withCredentials(url: string, kind: "nats" | "redis", user?: string, pass?: string): string {
  if (user !== undefined && pass === undefined) {
    throw new PipelineError(
      ["bus", "username"],
      kind === "nats"
        ? "a NATS user needs a password (a token goes in env: MSIGHT_NATS_TOKEN)"
        : "a Redis user needs a password",
    );
  }
  if (pass === undefined) return url;
  if (kind === "nats" && user === undefined) {
    throw new PipelineError(["bus", "password"], "a NATS password needs a username");
  }
  const at = url.indexOf("://") + 3;
  const cred = `${encodeURIComponent(user ?? "")}:${encodeURIComponent(pass)}@`;
  return url.slice(0, at) + cred + url.slice(at);
}

function serverList(value: unknown, backend: BusBackend): string[] {
  const path: KeyPath = ["bus", "servers"];
  const example = `[10.0.0.1:${DEFAULT_PORT[backend]}, 10.0.0.2:${DEFAULT_PORT[backend]}]`;
  if (value === undefined || value === null) {
    throw new PipelineError(path, `missing: expected a list like ${example}`);
  }
  // A list, or one text (so `${SERVERS}` can give them all): "h1:p1,h2:p2".
  const items: [unknown, KeyPath][] = Array.isArray(value)
    ? value.map((v, i) => [v, [...path, i]])
    : typeof value === "string"
    ? value.split(",").map((v) => [v, path])
    : [];
  if (!Array.isArray(value) && typeof value !== "string") {
    throw new PipelineError(path, `expected a list like ${example}`);
  }
  const out = items.map(([v, at]) => hostPort(v, backend, at)).filter((s) => s !== "");
  if (out.length === 0) throw new PipelineError(path, `empty: expected at least one server, like ${example}`);
  return out;
}

/** One server as `host:port` (a `nats://` or `redis://` in front, as MSight's lists write them, is taken off). */
function hostPort(value: unknown, backend: BusBackend, path: KeyPath): string {
  const s = (typeof value === "string" ? value : typeof value === "number" ? String(value) : "").trim();
  if (typeof value === "string" && s === "") return ""; // "h1:p1," : a trailing comma
  const bare = s.replace(backend === "nats" ? /^nats:\/\//i : /^redis:\/\//i, "").replace(/\/$/, "");
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(bare);
  const port = m?.[2] === undefined ? DEFAULT_PORT[backend] : Number(m[2]);
  if (!m || port < 1 || port > 65535) {
    throw new PipelineError(
      path,
      `${JSON.stringify(value)} is not a server: expected host:port, like 10.0.0.1:${DEFAULT_PORT[backend]}`,
    );
  }
  return `${m[1]}:${port}`;
}

/** The plan, once the nodes' own parser accepts the URL. */
function checked(url: string, path: KeyPath): BusPlan {
  try {
    const sel = selectBus({ busUrl: url, busUrlLabel: "the URL", env: () => undefined });
    const display = sel.backend === "redis"
      ? sel.redis.display
      : sel.backend === "redis-cluster"
      ? sel.cluster.display
      : sel.nats.display;
    return { backend: sel.backend, url, display };
  } catch (err) {
    throw new PipelineError(path, errorMessage(err));
  }
}
