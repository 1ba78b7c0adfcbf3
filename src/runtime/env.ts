/**
 * The environment MSight's users already set: `MSIGHT_EDGE_DEVICE_NAME` (stamped into messages, logs and S3 keys)
 * and the `MSIGHT_REDIS_MESSAGE_BROKER_*` variables, plus `REDIS_URL` as a shorter alternative. Reading goes
 * through a function so tests and the launcher can pass their own environment.
 *
 * @example
 * ```ts
 * import { redisSettingsFromEnv } from "./env.ts";
 * const r = redisSettingsFromEnv((k) => ({ REDIS_URL: "redis://:secret@127.0.0.1:6380/2" } as Record<string, string>)[k]);
 * console.log(r.host, r.port, r.db); // 127.0.0.1 6380 2
 * ```
 * @module
 */

import { UsageError } from "./errors.ts";

/** Reads one environment variable (undefined when unset or not permitted). */
export type EnvReader = (name: string) => string | undefined;

/** Reads `Deno.env`, treating a denied permission as unset. */
export const denoEnv: EnvReader = (name) => {
  try {
    return Deno.env.get(name);
  } catch {
    // No --allow-env for this name: treated as unset, as the node's permissions intend.
    return undefined;
  }
};

/** The prefix of MSight's Redis variables. */
export const REDIS_ENV_PREFIX = "MSIGHT_REDIS_MESSAGE_BROKER_";

/** Where and how to reach Redis. */
export interface RedisSettings {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** A unix socket path; wins over host/port (as in MSight). */
  path?: string;
  tls?: { certFile?: string; keyFile?: string; caFile?: string };
  /** For log lines: where we connect, without secrets. */
  display: string;
}

/** Redis settings from `REDIS_URL` if set, else MSight's variables, else localhost:6379 db 0. */
export function redisSettingsFromEnv(env: EnvReader = denoEnv): RedisSettings {
  const url = env("REDIS_URL");
  if (url) return redisSettingsFromUrl(url, "REDIS_URL");
  const v = (k: string) => {
    const x = env(REDIS_ENV_PREFIX + k);
    return x === undefined || x === "" ? undefined : x;
  };
  const port = intVar(v("PORT") ?? "6379", REDIS_ENV_PREFIX + "PORT", 1, 65535);
  const db = intVar(v("DB") ?? "0", REDIS_ENV_PREFIX + "DB", 0, 1 << 20);
  const host = v("HOST") ?? "localhost";
  const useTls = /^(1|true|yes|on)$/i.test(v("USE_TLS") ?? "");
  const path = v("UNIX_SOCKET_PATH");
  return {
    host,
    port,
    db,
    username: v("USERNAME"),
    password: v("PASSWORD"),
    path,
    tls: useTls
      ? { certFile: v("TLS_CERT_FILE"), keyFile: v("TLS_KEY_FILE"), caFile: v("TLS_CA_CERT_FILE") }
      : undefined,
    display: path ? `unix:${path} db ${db}` : `${useTls ? "rediss" : "redis"}://${host}:${port}/${db}`,
  };
}

/** Parses `redis://[user:pass@]host:port/db`, `rediss://...` or `unix:///path?db=N`. */
export function redisSettingsFromUrl(url: string, label = "--redis-url"): RedisSettings {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(
      `${label} ${JSON.stringify(maskSecret(url))} is invalid: expected redis://host:port/db`,
    );
  }
  if (u.protocol === "unix:") {
    const db = intVar(u.searchParams.get("db") ?? "0", label + " db", 0, 1 << 20);
    return { host: "", port: 0, db, path: u.pathname, display: `unix:${u.pathname} db ${db}` };
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    throw new UsageError(
      `${label} ${JSON.stringify(maskSecret(url))} is invalid: expected a redis:// or rediss:// URL`,
    );
  }
  const db = u.pathname.length > 1 ? intVar(u.pathname.slice(1), label + " database", 0, 1 << 20) : 0;
  const host = u.hostname.replace(/^\[|\]$/g, "") || "localhost";
  const port = u.port ? intVar(u.port, label + " port", 1, 65535) : 6379;
  return {
    host,
    port,
    db,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === "rediss:" ? {} : undefined,
    display: `${u.protocol}//${host}:${port}/${db}`,
  };
}

function maskSecret(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}

function intVar(text: string, name: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${name}=${JSON.stringify(text)} is invalid: expected an integer ${min}-${max}`);
  }
  return n;
}

/**
 * The device name: `MSIGHT_EDGE_DEVICE_NAME`, else the host name. MSight refuses to start without the variable;
 * we start and say once which name we chose (`warn` receives that line).
 */
export function deviceName(env: EnvReader = denoEnv, warn: (msg: string) => void = () => {}): string {
  const v = env("MSIGHT_EDGE_DEVICE_NAME");
  if (v) return v;
  let host = "edge";
  try {
    host = Deno.hostname();
  } catch {
    // --allow-sys=hostname not granted: keep the generic name.
  }
  warn(`MSIGHT_EDGE_DEVICE_NAME is not set: using the host name ${JSON.stringify(host)} as the device name`);
  return host;
}
