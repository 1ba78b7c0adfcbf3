/**
 * Which bus a node uses, chosen as MSight chooses it, plus a URL: `--bus-url` or `MSIGHT_BUS_URL` when given
 * (`redis://`, `rediss://`, `unix://`, `redis+cluster://h1:p1,h2:p2`, `rediss+cluster://...`,
 * `nats://[user:pass@]h1:4222,h2:4222`), else `MSIGHT_PUBSUB_BACKEND` (`redis`, the default, or `nats`; `kafka` is
 * refused in one line) with MSight's variables: `MSIGHT_REDIS_MESSAGE_BROKER_*` (with `_USE_CLUSTER` and
 * `_CLUSTER_NODES`, a Python list literal) and `MSIGHT_NATS_*`. Pure: reads only the environment it is given.
 *
 * With NATS as the data plane the registry stays in Redis, as in MSight, when Redis is configured (`--redis-url`,
 * `REDIS_URL` or any `MSIGHT_REDIS_MESSAGE_BROKER_*` variable); otherwise it lives in a JetStream key-value bucket.
 *
 * @example
 * ```ts
 * import { selectBus } from "./select.ts";
 * const sel = selectBus({ env: (k) => ({ MSIGHT_BUS_URL: "nats://127.0.0.1:4222" } as Record<string, string>)[k] });
 * console.log(sel.backend); // nats
 * ```
 * @module
 */

import { UsageError } from "../runtime/errors.ts";
import {
  denoEnv,
  type EnvReader,
  REDIS_ENV_PREFIX,
  type RedisSettings,
  redisSettingsFromEnv,
  redisSettingsFromUrl,
} from "../runtime/env.ts";

/** The back ends a user may choose, for messages. */
export const SUPPORTED_BACKENDS = "redis (the default; Redis Cluster too) and nats";

/** The prefix of MSight's NATS variables. */
export const NATS_ENV_PREFIX = "MSIGHT_NATS_";

/** Where and how to reach NATS (MSight's `get_nats_config`). */
export interface NatsSettings {
  /** Server URLs or host:port, tried in turn (the client also learns the cluster's other servers). */
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** An NKey seed (`SU...`), alone or with `userJwt`. */
  nkeySeed?: string;
  userJwt?: string;
  /** A `.creds` file (JWT and NKey seed). */
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** For log lines: the servers, without credentials. */
  display: string;
}

/** A Redis Cluster's seed nodes and the settings shared by every node. */
export interface RedisClusterSettings {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  tls?: { certFile?: string; keyFile?: string; caFile?: string };
  display: string;
}

/** The chosen back end and its settings. */
export type BusSelection =
  | { backend: "redis"; redis: RedisSettings }
  | { backend: "redis-cluster"; cluster: RedisClusterSettings }
  | {
    backend: "nats";
    nats: NatsSettings;
    /** Where the registry is: in Redis (as MSight keeps it) or, with no Redis configured, in JetStream KV. */
    registry: { redis: RedisSettings } | "nats";
  };

/** What {@linkcode selectBus} reads. */
export interface SelectInput {
  /** `--bus-url`. */
  busUrl?: string;
  /** What to call `busUrl` in messages (default `--bus-url`; the pipeline launcher names its own key). */
  busUrlLabel?: string;
  /** `--redis-url` (standalone Redis: the data plane, or the registry beside NATS). */
  redisUrl?: string;
  env?: EnvReader;
}

const truthy = (v: string | undefined) => /^(1|true|yes|on)$/i.test(v ?? "");

/** Chooses the back end; throws {@linkcode UsageError} (exit 2) with one line naming a bad value. */
export function selectBus(input: SelectInput = {}): BusSelection {
  const env = input.env ?? denoEnv;
  const get = (k: string) => {
    const v = env(k);
    return v === undefined || v === "" ? undefined : v;
  };
  const declared = get("MSIGHT_PUBSUB_BACKEND")?.toLowerCase();
  if (declared !== undefined && !["redis", "nats", "kafka"].includes(declared)) {
    throw new UsageError(
      `MSIGHT_PUBSUB_BACKEND=${
        JSON.stringify(get("MSIGHT_PUBSUB_BACKEND"))
      } is invalid: expected redis or nats`,
    );
  }
  const [url, label] = input.busUrl
    ? [input.busUrl, input.busUrlLabel ?? "--bus-url"]
    : [get("MSIGHT_BUS_URL"), "MSIGHT_BUS_URL"];
  const redisRegistry = (): { redis: RedisSettings } | "nats" => {
    if (input.redisUrl) return { redis: redisSettingsFromUrl(input.redisUrl) };
    const configured = get("REDIS_URL") !== undefined ||
      ["HOST", "PORT", "UNIX_SOCKET_PATH", "USE_TLS"].some((k) => get(REDIS_ENV_PREFIX + k) !== undefined);
    return configured ? { redis: redisSettingsFromEnv(env) } : "nats";
  };

  if (url) {
    const scheme = url.slice(0, Math.max(0, url.indexOf("://"))).toLowerCase();
    const backend = scheme.startsWith("nats") ? "nats" : scheme.startsWith("kafka") ? "kafka" : "redis";
    if (declared !== undefined && declared !== backend) {
      throw new UsageError(
        `${label} ${JSON.stringify(maskUrl(url))} and MSIGHT_PUBSUB_BACKEND=${declared} disagree: unset one`,
      );
    }
    switch (scheme) {
      case "redis":
      case "rediss":
      case "unix":
        return { backend: "redis", redis: redisSettingsFromUrl(url, label) };
      case "redis+cluster":
      case "rediss+cluster":
        return { backend: "redis-cluster", cluster: clusterFromUrl(url, label) };
      case "nats":
        return { backend: "nats", nats: natsFromUrl(url, label, get), registry: redisRegistry() };
      case "kafka":
        throw kafkaRefusal(`${label} kafka://`);
      default:
        throw new UsageError(
          `${label} ${JSON.stringify(maskUrl(url))} is invalid: expected a redis://, rediss://, ` +
            `redis+cluster://h1:p1,h2:p2 or nats://h1:4222,h2:4222 URL`,
        );
    }
  }

  if (declared === "kafka") throw kafkaRefusal("MSIGHT_PUBSUB_BACKEND=kafka");
  if (declared === "nats") {
    return { backend: "nats", nats: natsSettingsFromEnv(get), registry: redisRegistry() };
  }
  if (!input.redisUrl && truthy(get(REDIS_ENV_PREFIX + "USE_CLUSTER"))) {
    return { backend: "redis-cluster", cluster: clusterFromEnv(get, env) };
  }
  return {
    backend: "redis",
    redis: input.redisUrl ? redisSettingsFromUrl(input.redisUrl) : redisSettingsFromEnv(env),
  };
}

function kafkaRefusal(what: string): UsageError {
  return new UsageError(
    `${what}: the Kafka back end is not supported yet; supported back ends: ${SUPPORTED_BACKENDS}`,
  );
}

/**
 * Parses a Python list of strings as MSight writes it in the environment (`"['h1:6379', 'h2:6379']"`, read there
 * with `ast.literal_eval`); throws {@linkcode UsageError} naming `name` and the expected form.
 */
export function parsePythonList(text: string, name: string, example: string): string[] {
  const bad = () =>
    new UsageError(`${name}=${JSON.stringify(text)} is invalid: expected a list like "${example}"`);
  const s = text.trim();
  if (!s.startsWith("[") || !s.endsWith("]")) throw bad();
  const out: string[] = [];
  let i = 1;
  const skip = () => {
    while (i < s.length - 1 && /\s/.test(s[i])) i++;
  };
  skip();
  while (i < s.length - 1) {
    const q = s[i];
    if (q !== "'" && q !== '"') throw bad();
    let item = "";
    i++;
    while (i < s.length - 1 && s[i] !== q) {
      if (s[i] === "\\" && i + 1 < s.length - 1) i++;
      item += s[i++];
    }
    if (s[i] !== q) throw bad();
    i++;
    out.push(item);
    skip();
    if (i < s.length - 1) {
      if (s[i] !== ",") throw bad();
      i++;
      skip();
    }
  }
  return out;
}

function hostPort(text: string, defaultPort: number, what: string): { host: string; port: number } {
  // A host name, IPv4, or [IPv6]; then an optional port.
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(text.trim());
  const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${what} ${JSON.stringify(text)} is invalid: expected host:port`);
  }
  return { host: m[1] ?? m[2], port };
}

/** Splits `scheme://[user[:pass]@]hosts[/...]` without `URL` (which takes one host only). */
function splitMultiHostUrl(url: string): { user?: string; pass?: string; hosts: string[] } {
  let rest = url.slice(url.indexOf("://") + 3);
  const slash = rest.indexOf("/");
  if (slash >= 0) rest = rest.slice(0, slash);
  let user: string | undefined, pass: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const cred = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = cred.indexOf(":");
    user = decodeURIComponent(colon >= 0 ? cred.slice(0, colon) : cred) || undefined;
    pass = colon >= 0 ? decodeURIComponent(cred.slice(colon + 1)) || undefined : undefined;
  }
  return { user, pass, hosts: rest.split(",").map((h) => h.trim()).filter((h) => h !== "") };
}

/** Hides the password of a URL for messages. */
export function maskUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_m, cred: string) => `//${cred.includes(":") ? "***:***" : "***"}@`);
}

function clusterFromUrl(url: string, label: string): RedisClusterSettings {
  const { user, pass, hosts } = splitMultiHostUrl(url);
  if (hosts.length === 0) {
    throw new UsageError(
      `${label} ${JSON.stringify(maskUrl(url))} is invalid: expected redis+cluster://h1:p1,h2:p2`,
    );
  }
  const nodes = hosts.map((h) => hostPort(h, 6379, `${label} node`));
  const tls = url.toLowerCase().startsWith("rediss+") ? {} : undefined;
  return { nodes, username: user, password: pass, tls, display: clusterDisplay(nodes, !!tls) };
}

function clusterFromEnv(get: (k: string) => string | undefined, env: EnvReader): RedisClusterSettings {
  const base = redisSettingsFromEnv(env);
  const listText = get(REDIS_ENV_PREFIX + "CLUSTER_NODES");
  // MSight: without a node list, HOST:PORT is the cluster's entry point.
  const nodes = listText === undefined ? [{ host: base.host, port: base.port }] : parsePythonList(
    listText,
    REDIS_ENV_PREFIX + "CLUSTER_NODES",
    "['host1:6379', 'host2:6379']",
  ).map((n) => hostPort(n, 6379, REDIS_ENV_PREFIX + "CLUSTER_NODES entry"));
  if (nodes.length === 0) {
    throw new UsageError(`${REDIS_ENV_PREFIX}CLUSTER_NODES is an empty list: name at least one node`);
  }
  return {
    nodes,
    username: base.username,
    password: base.password,
    tls: base.tls,
    display: clusterDisplay(nodes, !!base.tls),
  };
}

function clusterDisplay(nodes: { host: string; port: number }[], tls: boolean): string {
  return `${tls ? "rediss" : "redis"}+cluster://${nodes.map((n) => `${n.host}:${n.port}`).join(",")}`;
}

/** NATS settings from MSight's `MSIGHT_NATS_*` variables (default server `nats://localhost:4222`). */
export function natsSettingsFromEnv(get: (k: string) => string | undefined): NatsSettings {
  const v = (k: string) => get(NATS_ENV_PREFIX + k);
  const servers = parsePythonList(
    v("SERVERS") ?? "['nats://localhost:4222']",
    NATS_ENV_PREFIX + "SERVERS",
    "['nats://ip1:4222', 'nats://ip2:4222']",
  );
  if (servers.length === 0) throw new UsageError(`${NATS_ENV_PREFIX}SERVERS is an empty list: name a server`);
  return {
    servers,
    user: v("USERNAME"),
    pass: v("PASSWORD"),
    token: v("TOKEN"),
    nkeySeed: v("NKEY_SEED"),
    userJwt: v("USER_JWT"),
    credsFile: v("USER_CREDENTIALS"),
    tls: truthy(v("USE_TLS"))
      ? { caFile: v("TLS_CA_CERT_FILE"), certFile: v("TLS_CERT_FILE"), keyFile: v("TLS_KEY_FILE") }
      : undefined,
    display: servers.map(maskUrl).join(","),
  };
}

function natsFromUrl(url: string, label: string, get: (k: string) => string | undefined): NatsSettings {
  const { user, pass, hosts } = splitMultiHostUrl(url);
  if (hosts.length === 0) {
    throw new UsageError(
      `${label} ${JSON.stringify(maskUrl(url))} is invalid: expected nats://h1:4222,h2:4222`,
    );
  }
  const servers = hosts.map((h) => {
    const { host, port } = hostPort(h, 4222, `${label} server`);
    return `nats://${host.includes(":") ? `[${host}]` : host}:${port}`;
  });
  // Credentials and TLS not in the URL still come from MSight's variables; a lone name in the URL is a token.
  const fromEnv = natsSettingsFromEnv((k) => (k === NATS_ENV_PREFIX + "SERVERS" ? undefined : get(k)));
  const token = user !== undefined && pass === undefined ? user : fromEnv.token;
  return {
    ...fromEnv,
    servers,
    user: pass !== undefined ? user : fromEnv.user,
    pass: pass ?? fromEnv.pass,
    token,
    display: servers.join(","),
  };
}
