/**
 * A node's flags in a pipeline file: a mapping keyed by MSight's long flag names (`publish-topic`; `publish_topic`
 * as Python users write it, or the camelCase key), checked and coerced with the node's own specs, then turned back
 * into the node's command line. Each value remembers the key path it came from, so an error points at the line
 * the user wrote, including values inherited from `defaults:`.
 *
 * @example
 * ```ts
 * import { FlagSet, flagArgv } from "./node_flags.ts";
 * import { NODE_KINDS } from "./node_kinds.ts";
 * const set = new FlagSet(NODE_KINDS.aggregator.specs, "aggregator");
 * set.read({ fps: 10, "buffer-size": 100, "overlap-size": 0 }, ["nodes", 1, "flags"]);
 * flagArgv(NODE_KINDS.aggregator.specs, set.values()); // ["--fps=10", "--buffer-size=100", "--overlap-size=0"]
 * ```
 * @module
 */

import { errorMessage } from "../runtime/errors.ts";
import { coerceFlag, type FlagSpecs, nearest } from "../runtime/flags.ts";
import { type KeyPath, PipelineError } from "./key_path.ts";
import type { FlagRecord } from "./node_kinds.ts";

/** Flags that a pipeline file may not set: `config` (the file is the config). */
const FORBIDDEN = new Set(["config"]);

/** One node's flags as they are collected from the file, each with the key path it came from. */
export class FlagSet {
  readonly #specs: FlagSpecs;
  readonly #byName = new Map<string, string>();
  readonly #byShort = new Map<string, string>();
  readonly #values = new Map<string, { value: string | number | boolean; path: KeyPath }>();

  /** `type` names the node in messages (`the rtsp node has no flag ...`); `all` is `defaults.all`. */
  constructor(specs: FlagSpecs, readonly type: string) {
    this.#specs = specs;
    for (const [key, spec] of Object.entries(specs)) {
      if (FORBIDDEN.has(key)) continue;
      this.#byName.set(spec.long, key);
      this.#byName.set(spec.long.replaceAll("-", "_"), key);
      this.#byName.set(key, key);
      if (spec.short) this.#byShort.set(spec.short, key);
    }
  }

  /**
   * Reads a `flags:` mapping at `path`; later reads override earlier ones (defaults first, then the node's own).
   *
   * @example
   * ```ts
   * declare const set: FlagSet;
   * set.read({ "logging-level": "DEBUG" }, ["defaults", "all"]);
   * ```
   */
  read(obj: unknown, path: KeyPath): void {
    if (obj === null || obj === undefined) return;
    if (typeof obj !== "object" || Array.isArray(obj)) {
      throw new PipelineError(path, "expected a mapping of flag names to values, e.g. {fps: 10}");
    }
    for (const [name, value] of Object.entries(obj)) this.set(name, value, [...path, name]);
  }

  /**
   * Sets one flag by its name in the file (`buffer-size`), checking the value with the node's spec.
   *
   * @example
   * ```ts
   * declare const set: FlagSet;
   * set.set("sensor-name", "cam_ne", ["cameras", 0, "name"]);
   * ```
   */
  set(name: string, value: unknown, path: KeyPath): void {
    const key = this.#byName.get(name);
    if (key === undefined) throw new PipelineError(path, this.#unknown(name));
    if (value === null || value === undefined) {
      this.#values.delete(key); // `fps: ~` falls back to the default, as on the command line
      return;
    }
    if (typeof value === "object") {
      throw new PipelineError(
        path,
        `expected a single value, got a ${Array.isArray(value) ? "list" : "mapping"}`,
      );
    }
    const spec = this.#specs[key];
    let coerced: string | number | boolean;
    try {
      // YAML reads `prefix: yes` as a boolean; a string flag means the text.
      coerced = coerceFlag(spec, typeof value === "boolean" && spec.type !== "bool" ? String(value) : value);
    } catch (err) {
      throw new PipelineError(path, errorMessage(err));
    }
    this.#values.set(key, { value: coerced, path });
  }

  /** The spec key a name of the file refers to (`buffer-size` → `bufferSize`), if any. */
  keyOf(name: string): string | undefined {
    return this.#byName.get(name);
  }

  /** Whether the flag with spec key `key` was set. */
  has(key: string): boolean {
    return this.#values.has(key);
  }

  /** The key path a flag's value came from (for errors found later, e.g. cross-flag checks). */
  pathOf(key: string): KeyPath | undefined {
    return this.#values.get(key)?.path;
  }

  /** The values set in the file, keyed like the specs. */
  values(): FlagRecord {
    return Object.fromEntries([...this.#values].map(([k, v]) => [k, v.value]));
  }

  /** The values the node will run with: those set, then the specs' defaults. */
  effective(): FlagRecord {
    const out: FlagRecord = {};
    for (const [key, spec] of Object.entries(this.#specs)) {
      if (spec.default !== undefined) out[key] = spec.default;
    }
    return { ...out, ...this.values() };
  }

  /**
   * Throws for the first required flag that is neither set nor available from the node's environment.
   *
   * @example
   * ```ts
   * declare const set: FlagSet;
   * set.requireAll(["nodes", 1, "flags"], (k) => Deno.env.get(k));
   * ```
   */
  requireAll(path: KeyPath, env: (name: string) => string | undefined): void {
    for (const [key, spec] of Object.entries(this.#specs)) {
      if (!spec.required || this.#values.has(key)) continue;
      if (spec.env && env(spec.env)) continue;
      throw new PipelineError(path, `${spec.long} is required: the ${this.type} node needs --${spec.long}`);
    }
  }

  #unknown(name: string): string {
    if (FORBIDDEN.has(name)) {
      return `${name} cannot be set here: the pipeline file is the node's configuration`;
    }
    const short = this.#byShort.get(name.replace(/^-+/, ""));
    const long = name.replace(/^-+/, "");
    const hint = short !== undefined
      ? this.#specs[short].long
      : this.#byName.has(long)
      ? this.#specs[this.#byName.get(long)!].long
      : nearest(name, Object.entries(this.#specs).filter(([k]) => !FORBIDDEN.has(k)).map(([, s]) => s.long));
    const what = this.type === "all"
      ? `${name} is not a flag every node takes (give it under defaults.<node type>)`
      : `the ${this.type} node has no flag ${name}`;
    return `${what}${hint ? ` (did you mean ${hint}?)` : ""}`;
  }
}

/**
 * The command line for flag values (spec keys): `--long=value` for each, so values that start with `-` stay
 * values; a `bool` flag is `--long` when true and `--long=false` when false.
 *
 * @example
 * ```ts
 * import { RTSP_FLAGS } from "../node/rtsp_flags.ts";
 * flagArgv(RTSP_FLAGS, { gpu: -1, url: "rtsp://cam/live" }); // ["--url=rtsp://cam/live", "--gpu=-1"]
 * ```
 */
export function flagArgv(specs: FlagSpecs, values: FlagRecord): string[] {
  const out: string[] = [];
  // In the specs' order (the common flags, `--name` first, then the node's own), whatever the file's order.
  for (const [key, spec] of Object.entries(specs)) {
    const value = values[key];
    if (value === undefined) continue;
    if (spec.type === "bool") out.push(value === true ? `--${spec.long}` : `--${spec.long}=false`);
    else out.push(`--${spec.long}=${value}`);
  }
  return out;
}
