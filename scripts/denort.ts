/**
 * Where `deno compile` gets its `denort` runtime (the binary every compiled program is built on), in Deno's own
 * order: `DENORT_BIN`, else the copy cached under `$DENO_DIR/dl/release/v<version>/`, else a download from Deno's
 * server. Build machines without internet have none of them; {@linkcode findDenort} says so in one line instead of
 * letting `deno compile` fail with a stack of causes.
 *
 * @example
 * ```ts
 * import { findDenort } from "./denort.ts";
 * const d = await findDenort();
 * console.log(d.available ? `denort: ${d.source}` : `no denort: ${d.reason}`);
 * ```
 * @module
 */

/** The answer of {@linkcode findDenort}. */
export type DenortStatus =
  | { available: true; source: string }
  | { available: false; reason: string };

/** Deno's download address of the runtime for this Deno version and target. */
export function denortUrl(version = Deno.version.deno, target = Deno.build.target): string {
  return `https://dl.deno.land/release/v${version}/denort-${target}.zip`;
}

/**
 * The file `deno compile` caches a downloaded runtime in.
 *
 * @example
 * ```ts
 * import { cachedDenortPath } from "./denort.ts";
 * cachedDenortPath("/root/.cache/deno"); // "/root/.cache/deno/dl/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip"
 * ```
 */
export function cachedDenortPath(
  denoDir: string,
  version = Deno.version.deno,
  target = Deno.build.target,
): string {
  return `${denoDir}/dl/release/v${version}/denort-${target}.zip`;
}

/**
 * `DENO_DIR` as the running Deno resolves it (`deno info --json`).
 *
 * @example
 * ```ts
 * import { denoDir } from "./denort.ts";
 * console.log(await denoDir()); // "/root/.cache/deno"
 * ```
 */
export async function denoDir(deno = Deno.execPath()): Promise<string> {
  const out = await new Deno.Command(deno, { args: ["info", "--json"], stdout: "piped", stderr: "null" })
    .output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: string };
  if (!info.denoDir) throw new Error("deno info --json gave no denoDir");
  return info.denoDir;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    // Does not exist (or unreadable): not a usable file.
    return false;
  }
}

/**
 * Checks a `DENORT_BIN` value: it must be a file, and not the `deno` CLI itself (which `deno compile` would copy
 * as the "program", giving a second Deno instead of the node). Returns the problem in one line, or undefined.
 *
 * @example
 * ```ts
 * import { denortBinProblem } from "./denort.ts";
 * await denortBinProblem("/nope"); // "DENORT_BIN=/nope: no such file"
 * ```
 */
export async function denortBinProblem(path: string): Promise<string | undefined> {
  if (!(await isFile(path))) return `DENORT_BIN=${path}: no such file`;
  const real = await Deno.realPath(path);
  if (real === (await Deno.realPath(Deno.execPath()))) {
    return `DENORT_BIN=${path} is the deno CLI, not the denort runtime (the binaries would be copies of Deno)`;
  }
  return undefined;
}

/**
 * Whether `deno compile` can get a runtime here; the download is probed with one HEAD request (3 s).
 *
 * @example
 * ```ts
 * import { findDenort } from "./denort.ts";
 * const d = await findDenort();
 * if (!d.available) console.log(`compile test not run: denort unavailable (${d.reason})`);
 * ```
 */
export async function findDenort(): Promise<DenortStatus> {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) {
    const problem = await denortBinProblem(bin);
    return problem ? { available: false, reason: problem } : { available: true, source: `DENORT_BIN=${bin}` };
  }
  const cached = cachedDenortPath(await denoDir());
  if (await isFile(cached)) return { available: true, source: cached };
  const url = denortUrl();
  try {
    const res = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    if (res.ok) return { available: true, source: url };
    return {
      available: false,
      reason: `no DENORT_BIN, none cached at ${cached}, download answered ${res.status}`,
    };
  } catch (err) {
    // fetch's own message is "fetch failed"; the cause says what (DNS, refused, timeout).
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const why = (cause instanceof Error ? cause.message.split("\n")[0] : String(cause))
      .replace(/^error sending request for url \([^)]*\): /, "");
    return { available: false, reason: `no DENORT_BIN, none cached at ${cached}, download blocked: ${why}` };
  }
}
