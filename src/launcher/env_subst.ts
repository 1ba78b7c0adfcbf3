/**
 * `${VAR}` and `${VAR:-default}` in a pipeline file's values, so secrets (AWS keys, Redis passwords) and per-site
 * settings stay out of the file. Substitution runs on the parsed values, never on the YAML text, so a value with
 * `:` or `#` in it cannot change the file's structure. Keys are not substituted; `$${` writes a literal `${`, and a
 * `$` not followed by `{` is kept as is (passwords may contain one).
 *
 * `${VAR}` with VAR unset is an error naming the variable and the key; `${VAR:-default}` uses the default when VAR
 * is unset or empty (as the shell does).
 *
 * @example
 * ```ts
 * import { substituteEnv } from "./env_subst.ts";
 * const env = (k: string) => ({ BUCKET: "videos" } as Record<string, string>)[k];
 * substituteEnv({ bucket: "${BUCKET}", prefix: "${PREFIX:-edge}" }, env);
 * // { bucket: "videos", prefix: "edge" }
 * ```
 * @module
 */

import { type KeyPath, PipelineError } from "./key_path.ts";

/** Reads one variable of the launcher's environment (undefined when unset). */
export type EnvLookup = (name: string) => string | undefined;

const REF = /\$\$\{|\$\{([^}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Substitutes in one string; `path` names the key in errors.
 *
 * @example
 * ```ts
 * substituteString("redis://:${PW}@db:6379/0", (k) => (k === "PW" ? "s3cret" : undefined), ["redis", "url"]);
 * // "redis://:s3cret@db:6379/0"
 * ```
 */
export function substituteString(text: string, env: EnvLookup, path: KeyPath): string {
  return text.replace(REF, (whole, body: string | undefined) => {
    if (body === undefined) return "${"; // `$${` escapes
    const sep = body.indexOf(":-");
    const name = sep >= 0 ? body.slice(0, sep) : body;
    if (!NAME.test(name)) {
      throw new PipelineError(
        path,
        `${whole} is not a variable reference: expected \${NAME} or \${NAME:-default} (write $\${ for a literal \${)`,
      );
    }
    const value = env(name);
    if (sep >= 0) return value === undefined || value === "" ? body.slice(sep + 2) : value;
    if (value === undefined) {
      throw new PipelineError(
        path,
        `environment variable ${name} is not set (set it, or give a default: \${${name}:-value})`,
      );
    }
    return value;
  });
}

/**
 * Returns a copy of a parsed YAML tree with every string value substituted; numbers, booleans and keys are kept.
 *
 * @example
 * ```ts
 * substituteEnv({ env: { AWS_SECRET_ACCESS_KEY: "${AWS_SECRET_ACCESS_KEY}" } }, (k) => Deno.env.get(k));
 * ```
 */
export function substituteEnv(value: unknown, env: EnvLookup, path: KeyPath = []): unknown {
  if (typeof value === "string") return substituteString(value, env, path);
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, i]));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, [...path, k]);
    return out;
  }
  return value;
}
