/**
 * `deno task compile`: builds the standalone binaries into `dist/` (`msight_launch_rtsp`,
 * `msight_launch_image_to_video_aggregator`, `msight_launch_video_local_dumper`, `msight_launch_aws_video_pusher`,
 * `msight_status`, `msight_echo`, `msight_launch_web`), each with its node's permissions baked in (see `compile_plan.ts`, which also
 * explains how the dumper's and pusher's write grants are chosen at build time).
 *
 * `deno compile` builds on a `denort` runtime: `DENORT_BIN`, a cached copy, or a download from Deno's server.
 * Where none can be had the script stops with one line saying so (exit 1), not deno's chain of causes.
 *
 * Each binary is run once with `--help` after it is built (skipped with `--target`): a runtime that is really the
 * deno CLI would otherwise give six copies of Deno that look like a success.
 *
 * @example
 * ```sh
 * deno task compile                                   # dist/, dumper may write ./received_videos
 * deno task compile --save-dir /var/lib/msight/videos --spool-dir /var/lib/msight/spool
 * DENORT_BIN=/opt/denort deno task compile --only msight_launch_video_local_dumper --out-dir /tmp/bin
 * deno task compile --plan                            # print the deno compile commands, run nothing
 * ```
 * @module
 */

import { FatalError, UsageError } from "../src/runtime/errors.ts";
import { parseFlags } from "../src/runtime/flags.ts";
import { BINARIES, type CompileJob, compilePlan } from "./compile_plan.ts";
import { cachedDenortPath, denoDir, denortBinProblem } from "./denort.ts";
import { runTool } from "../src/node/run_tool.ts";

const FLAGS = {
  outDir: { long: "out-dir", type: "string", default: "dist", help: "where the binaries go" },
  saveDir: {
    long: "save-dir",
    type: "string",
    default: "./received_videos",
    help: "the one directory the dumper binary may write (relative: to its working directory when it runs)",
  },
  spoolDir: {
    long: "spool-dir",
    type: "string",
    default: "./.msight-spool",
    help: "the one directory the pusher binary may write (its --spool-dir must be inside)",
  },
  target: { long: "target", type: "string", help: "deno compile --target (default: this machine)" },
  only: { long: "only", type: "string", help: "comma-separated binary names (default: all six)" },
  plan: { long: "plan", type: "bool", default: false, help: "print the deno compile commands and exit" },
} as const;

const DENO = Deno.execPath();
const ROOT = new URL("../", import.meta.url).pathname;
const say = (line: string) => console.error(`[compile] ${line}`);

/** ffmpeg.wasm's core in node_modules (the symlink and its target), left out of every binary but one. */
async function wasmCorePaths(): Promise<string[]> {
  const paths: string[] = [];
  try {
    for await (const e of Deno.readDir(`${ROOT}node_modules/.deno`)) {
      if (e.name.startsWith("@ffmpeg+core@")) paths.push(`node_modules/.deno/${e.name}`);
    }
  } catch {
    // No node_modules/.deno (packages not installed that way): nothing extra to include.
    return [];
  }
  return paths.length ? ["node_modules/@ffmpeg/core", ...paths] : [];
}

/** Deno's error text without colours, from its `error:` line up to the backtrace. */
function denoError(stderr: string): string[] {
  // deno-lint-ignore no-control-regex
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  const start = lines.findIndex((l) => l.startsWith("error:"));
  const body = start >= 0 ? lines.slice(start) : lines;
  const end = body.findIndex((l) => l.startsWith("Stack backtrace"));
  return (end >= 0 ? body.slice(0, end) : body).map((l) => l.trim()).filter(Boolean);
}

/**
 * One line for a failed `deno compile` whose runtime could not be had, else undefined.
 *
 * @example
 * ```ts
 * denortFailure(["error: Writing ...", "1: error sending request for url (https://.../denort-x.zip): dns error"], "/c");
 * // "deno compile needs the denort runtime ... could not download it (dns error) ..."
 * ```
 */
export function denortFailure(errLines: string[], cache: string): string | undefined {
  const text = errLines.join("\n");
  if (!/denort|Setting up base binary/.test(text)) return undefined;
  const cause = errLines.at(-1)?.replace(/^\d+:\s*/, "") ?? "unknown cause";
  return `deno compile needs the denort runtime of Deno ${Deno.version.deno} (${Deno.build.target}) and could not ` +
    `download it (${cause}): set DENORT_BIN to a denort binary of that version, or run once where Deno's download ` +
    `server is reachable (it is then cached at ${cache})`;
}

async function compileOne(job: CompileJob, cache: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(DENO, { args: job.args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const lines = denoError(new TextDecoder().decode(out.stderr));
    const denort = denortFailure(lines, cache);
    if (denort) throw new FatalError(denort);
    throw new FatalError(`deno compile of ${job.binary} failed: ${lines.join(" / ")}`);
  }
  return (performance.now() - t0) / 1000;
}

/** Runs `<binary> --help`: a real node prints `usage: <node>`, a copy of the deno CLI does not. */
async function smokeTest(job: CompileJob): Promise<void> {
  const out = await new Deno.Command(job.output, {
    args: ["--help"],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const first = new TextDecoder().decode(out.stdout).split("\n")[0];
  if (!out.success || !first.startsWith(`usage: ${job.node}`)) {
    throw new FatalError(
      `${job.output} --help printed ${JSON.stringify(first)} (exit ${out.code}), not the node's usage: ` +
        `is DENORT_BIN really denort?`,
    );
  }
}

async function main(): Promise<void> {
  const f = parseFlags(
    FLAGS,
    Deno.args,
    "compile",
    {},
    "Build the nodes as standalone binaries (deno compile).",
  );
  const only = f.only?.split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of only ?? []) {
    if (!BINARIES[name]) {
      throw new UsageError(`--only ${name}: expected one of ${Object.keys(BINARIES).join(", ")}`);
    }
  }
  // Absolute, so the compile commands (run from the project root) write where the caller meant.
  const outDir = f.outDir.startsWith("/") ? f.outDir : `${Deno.cwd()}/${f.outDir}`;
  const jobs = compilePlan({
    outDir,
    saveDir: f.saveDir,
    spoolDir: f.spoolDir,
    target: f.target,
    only,
    wasmCorePaths: await wasmCorePaths(),
  });
  if (f.plan) {
    for (const j of jobs) console.log(["deno", ...j.args].join(" "));
    return;
  }
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) {
    const problem = await denortBinProblem(bin);
    if (problem) throw new FatalError(problem);
  }
  const cache = cachedDenortPath(await denoDir(DENO));

  // One type-check of every entry, so each compile can skip it (--no-check in the plan).
  say(`type-checking ${jobs.map((j) => j.node).join(", ")}`);
  const check = await new Deno.Command(DENO, {
    args: ["check", "--quiet", ...new Set(jobs.map((j) => j.args.at(-1) as string))],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!check.success) throw new FatalError("type errors: fix them before compiling");

  await Deno.mkdir(outDir, { recursive: true });
  for (const job of jobs) {
    const secs = await compileOne(job, cache);
    if (!f.target) await smokeTest(job);
    const size = (await Deno.stat(job.output)).size;
    const perms = job.args.filter((a) => a.startsWith("--allow-")).join(" ");
    say(`${job.output} (${(size / 2 ** 20).toFixed(0)} MiB, ${secs.toFixed(1)} s): ${perms}`);
  }
}

if (import.meta.main) await runTool("compile", main);
