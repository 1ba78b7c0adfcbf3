/**
 * Command-line flags parsed the way Python's argparse parses MSight's launchers, so the tutorials' commands work
 * unchanged: `-pt x` is one option (not `-p -t`), unambiguous prefixes of long options are accepted
 * (`--buffer 100`), `--flag=value` works, and a negative number is a value (`-g -1`). Each flag is declared once,
 * with its help and default, in a {@linkcode FlagSpecs} object; the parsed values are typed from it.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const specs = {
 *   name: { long: "name", short: "n", type: "string", required: true, help: "node name" },
 *   fps: { long: "fps", type: "number", default: 10, help: "target frame rate" },
 * } as const;
 * const v = parseFlags(specs, ["-n", "agg", "--fps=25"], "aggregator");
 * console.log(v.name, v.fps); // agg 25
 * ```
 * @module
 */

import { UsageError } from "./errors.ts";

/** The kind of value a flag takes. `bool` flags take no value (`store_true`). */
export type FlagType = "string" | "int" | "number" | "bool";

/** One flag: its names, type, default and help, as MediaMTX documents options where they are defined. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `publish-topic`. */
  readonly long: string;
  /** Single-dash name without the dash, e.g. `pt` (argparse-style: one option, not clustered letters). */
  readonly short?: string;
  readonly type: FlagType;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly required?: boolean;
  /** Allowed values (string flags). */
  readonly choices?: readonly string[];
  /** Smallest allowed value (numeric flags). */
  readonly min?: number;
  /** True when `min` itself is not allowed (e.g. fps > 0). */
  readonly minExclusive?: boolean;
  readonly max?: number;
  /** Shown in help instead of the type, e.g. `SECONDS`. */
  readonly metavar?: string;
  /** Where the value may also come from when not given on the command line. */
  readonly env?: string;
  /** A string flag that may be given more than once: the values are joined with commas, in order. */
  readonly repeatable?: boolean;
}

/** A node's flags, keyed by the property name its code reads. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

type ValueOf<S extends FlagSpec> = S["type"] extends "bool" ? boolean
  : S["type"] extends "int" | "number" ? number
  : S["choices"] extends readonly (infer C)[] ? C
  : string;

/** The parsed values: required flags and flags with defaults are always present. */
export type FlagValues<T extends FlagSpecs> =
  & {
    -readonly [K in keyof T as T[K] extends { required: true } | { default: unknown } ? K : never]: ValueOf<
      T[K]
    >;
  }
  & {
    -readonly [K in keyof T as T[K] extends { required: true } | { default: unknown } ? never : K]?: ValueOf<
      T[K]
    >;
  };

/** Thrown for `-h/--help`: the caller prints `text` and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly text: string) {
    super("help requested");
    this.name = "HelpRequested";
  }
}

/** Edit distance where swapping two neighbours counts as one edit (`fsp` is 1 from `fps`), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The candidate nearest to `word`, or undefined when none is reasonably close. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function flagName(spec: FlagSpec): string {
  return `--${spec.long}`;
}

const NEGATIVE_NUMBER = /^-\d+(\.\d+)?$|^-\.\d+$/;

/**
 * Converts a text value to the flag's type and checks its range and choices; throws a one-line
 * {@linkcode UsageError} naming the flag, the bad value and what would be right. `from` names where the value came
 * from when it is not the command line (a config file path, an environment variable).
 */
export function coerceFlag(spec: FlagSpec, value: unknown, from?: string): string | number | boolean {
  const where = from ? `${from}: ` : "";
  // Plain tokens are shown as typed; anything with spaces or quotes is quoted so the line stays unambiguous.
  const shown = typeof value === "string" && !/^[\w.:/@+-]+$/.test(value)
    ? JSON.stringify(value)
    : String(value);
  const fail = (expected: string) =>
    new UsageError(`${where}${flagName(spec)} ${shown} is invalid: expected ${expected}`);
  let v: string | number | boolean;
  switch (spec.type) {
    case "bool":
      if (typeof value === "boolean") v = value;
      else if (typeof value === "string" && /^(true|yes|1|on)$/i.test(value)) v = true;
      else if (typeof value === "string" && /^(false|no|0|off)$/i.test(value)) v = false;
      else throw fail("true or false");
      break;
    case "int": {
      const n = typeof value === "number"
        ? value
        : typeof value === "string" && value.trim() !== ""
        ? Number(value)
        : NaN;
      if (!Number.isInteger(n)) throw fail("an integer");
      v = n;
      break;
    }
    case "number": {
      const n = typeof value === "number"
        ? value
        : typeof value === "string" && value.trim() !== ""
        ? Number(value)
        : NaN;
      if (!Number.isFinite(n)) throw fail("a number");
      v = n;
      break;
    }
    default:
      if (typeof value !== "string" && typeof value !== "number") throw fail("a string");
      v = String(value);
  }
  if (typeof v === "number") {
    if (spec.min !== undefined && (spec.minExclusive ? v <= spec.min : v < spec.min)) {
      throw fail(`a number ${spec.minExclusive ? ">" : "≥"} ${spec.min}`);
    }
    if (spec.max !== undefined && v > spec.max) throw fail(`a number ≤ ${spec.max}`);
  }
  if (spec.choices && !spec.choices.includes(String(v))) {
    const hint = nearest(String(v), spec.choices);
    throw fail(`one of ${spec.choices.join(", ")}${hint ? ` (did you mean ${hint}?)` : ""}`);
  }
  return v;
}

/**
 * Parses `argv` against `specs`. `preset` holds values from a config file (lower precedence than the command line,
 * higher than defaults and environment). Throws {@linkcode UsageError} or {@linkcode HelpRequested}.
 */
export function parseFlags<T extends FlagSpecs>(
  specs: T,
  argv: readonly string[],
  prog: string,
  preset: Partial<Record<keyof T, unknown>> = {},
  description = "",
  env: (name: string) => string | undefined = () => undefined,
): FlagValues<T> {
  const byLong = new Map<string, keyof T>();
  const byShort = new Map<string, keyof T>();
  for (const key of Object.keys(specs) as (keyof T)[]) {
    byLong.set(specs[key].long, key);
    if (specs[key].short) byShort.set(specs[key].short!, key);
  }
  const given = new Map<keyof T, unknown>();

  const resolve = (token: string): keyof T => {
    if (token.startsWith("--")) {
      const name = token.slice(2);
      const exact = byLong.get(name);
      if (exact !== undefined) return exact;
      const matches = [...byLong.keys()].filter((l) => l.startsWith(name));
      if (matches.length === 1 && name.length > 0) return byLong.get(matches[0])!;
      if (matches.length > 1) {
        throw new UsageError(
          `${prog}: ambiguous option ${token} could match ${matches.map((m) => "--" + m).join(", ")}`,
        );
      }
    } else {
      const exact = byShort.get(token.slice(1));
      if (exact !== undefined) return exact;
    }
    const all = [
      ...[...byLong.keys()].map((l) => "--" + l),
      ...[...byShort.keys()].map((s) => "-" + s),
      "--help",
    ];
    const hint = nearest(token, all);
    throw new UsageError(`${prog}: unrecognized argument ${token}${hint ? ` (did you mean ${hint}?)` : ""}`);
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") throw new HelpRequested(formatHelp(specs, prog, description));
    if (!arg.startsWith("-") || arg === "-" || NEGATIVE_NUMBER.test(arg)) {
      throw new UsageError(
        `${prog}: unexpected argument ${JSON.stringify(arg)}: every value follows its flag`,
      );
    }
    const eq = arg.indexOf("=");
    const token = eq > 0 ? arg.slice(0, eq) : arg;
    const key = resolve(token);
    const spec = specs[key];
    let raw: unknown;
    if (spec.type === "bool") {
      raw = eq > 0 ? arg.slice(eq + 1) : true;
    } else if (eq > 0) {
      raw = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next !== "-" && !NEGATIVE_NUMBER.test(next))) {
        throw new UsageError(
          `${prog}: ${flagName(spec)} expects a value${spec.metavar ? ` (${spec.metavar})` : ""}`,
        );
      }
      raw = next;
      i++;
    }
    const value = coerceFlag(spec, raw);
    given.set(key, spec.repeatable && given.has(key) ? `${given.get(key)},${value}` : value);
  }

  const out: Record<string, unknown> = {};
  for (const key of Object.keys(specs) as (keyof T & string)[]) {
    const spec = specs[key];
    if (given.has(key)) out[key] = given.get(key);
    else if (preset[key] !== undefined) out[key] = preset[key];
    else if (spec.env && env(spec.env) !== undefined && env(spec.env) !== "") {
      out[key] = coerceFlag(spec, env(spec.env), `environment ${spec.env}`);
    } else if (spec.default !== undefined) out[key] = spec.default;
    else if (spec.required) {
      const names = [spec.short ? `-${spec.short}` : "", flagName(spec)].filter(Boolean).join("/");
      throw new UsageError(`${prog}: the following argument is required: ${names}`);
    }
  }
  return out as FlagValues<T>;
}

/** The `--help` text: usage line, then every flag with its type, default and help. */
export function formatHelp(specs: FlagSpecs, prog: string, description: string): string {
  const lines = [`usage: ${prog} [options]`, ""];
  if (description) lines.push(description, "");
  lines.push("options:", "  -h, --help                  show this help and exit");
  for (const spec of Object.values(specs)) {
    const meta = spec.type === "bool"
      ? ""
      : ` ${spec.metavar ?? (spec.choices ? `{${spec.choices.join(",")}}` : spec.type.toUpperCase())}`;
    const names = `  ${spec.short ? `-${spec.short}, ` : ""}--${spec.long}${meta}`;
    const extras = [
      spec.required ? "required" : undefined,
      spec.default !== undefined ? `default: ${JSON.stringify(spec.default)}` : undefined,
      spec.env ? `env: ${spec.env}` : undefined,
    ].filter(Boolean).join("; ");
    const help = spec.help + (extras ? ` (${extras})` : "");
    lines.push(names.length < 28 ? names.padEnd(28) + help : names + "\n" + " ".repeat(28) + help);
  }
  return lines.join("\n");
}
