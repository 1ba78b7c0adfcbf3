/**
 * `--config FILE.yaml`: any flag of a node can come from a YAML mapping, keyed by the flag's long name
 * (`publish-topic`, or `publish_topic` as Python users write it). The command line wins over the file. A bad key or
 * a value of the wrong type is reported with the file and the key's path, in one line.
 *
 * @example
 * ```ts
 * import type { FlagSpecs } from "./flags.ts";
 * import { loadConfigFile } from "./config.ts";
 * declare const specs: FlagSpecs;
 * // rtsp.yaml:  url: rtsp://cam/live\nrtsp-transport: udp
 * const preset = await loadConfigFile("rtsp.yaml", specs);
 * ```
 * @module
 */

import { parse as parseYaml } from "yaml";
import { UsageError } from "./errors.ts";
import { coerceFlag, type FlagSpecs, nearest } from "./flags.ts";

/** Finds `--config FILE` / `--config=FILE` in argv without parsing the rest. */
export function findConfigPath(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--config" || a === "--confi" || a === "--conf") return argv[i + 1];
    if (a.startsWith("--config=")) return a.slice("--config=".length);
  }
  return undefined;
}

/** Reads a YAML config file and returns flag values keyed like `specs`; throws a one-line UsageError. */
export async function loadConfigFile<T extends FlagSpecs>(
  path: string,
  specs: T,
): Promise<Partial<Record<keyof T, unknown>>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "no such file" : (err as Error).message.split("\n")[0];
    throw new UsageError(`--config ${path}: cannot read it (${why})`);
  }
  return configFromText(text, path, specs);
}

/** Like {@linkcode loadConfigFile}, from text already read; `label` names the source in errors. */
export function configFromText<T extends FlagSpecs>(
  text: string,
  label: string,
  specs: T,
): Partial<Record<keyof T, unknown>> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${label}: not valid YAML (${(err as Error).message.split("\n")[0]})`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new UsageError(`${label}: expected a mapping of flag names to values at the top level`);
  }
  return configFromObject(doc as Record<string, unknown>, label, specs);
}

/** Maps an already parsed object onto `specs` (used by the pipeline launcher too); `label` prefixes key paths. */
export function configFromObject<T extends FlagSpecs>(
  obj: Record<string, unknown>,
  label: string,
  specs: T,
): Partial<Record<keyof T, unknown>> {
  const byName = new Map<string, keyof T>();
  for (const key of Object.keys(specs) as (keyof T & string)[]) {
    byName.set(specs[key].long, key);
    byName.set(specs[key].long.replaceAll("-", "_"), key);
    byName.set(key, key);
  }
  const out: Partial<Record<keyof T, unknown>> = {};
  for (const [name, value] of Object.entries(obj)) {
    const key = byName.get(name);
    if (key === undefined || name === "config") {
      const hint = nearest(name, Object.values(specs).map((s) => s.long));
      throw new UsageError(`${label}: unknown key ${name}${hint ? ` (did you mean ${hint}?)` : ""}`);
    }
    if (value === null || value === undefined) continue;
    if (typeof value === "object") {
      throw new UsageError(
        `${label}: ${name} must be a single value, got a ${Array.isArray(value) ? "list" : "mapping"}`,
      );
    }
    out[key] = coerceFlag(
      specs[key],
      typeof value === "boolean" && specs[key].type !== "bool" ? String(value) : value,
      `${label}: ${name}`,
    );
  }
  return out;
}
