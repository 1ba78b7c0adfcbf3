/**
 * `deno task up PIPELINE.yaml`: runs a whole pipeline from one file (schema: README, "Running a whole
 * pipeline"). The file is checked completely first; a bad one gets one line with the key path and exit 2,
 * before anything starts. Then each node runs as its own process with its own permissions (the RTSP nodes up to
 * `cameras_per_process` to a process), its lines prefixed with its name (`rtsp group K` for several RTSP nodes),
 * restarted with backoff when it exits. SIGINT, SIGTERM or SIGHUP stops the nodes gracefully
 * in pipeline order (sources first, so the last partial segment is flushed and saved), then any Redis it
 * started, and exits 0; a second signal (a second or more after the first: `src/runtime/signals.ts`) kills
 * them at once.
 *
 * `--check` only checks the file and prints each node's command line.
 *
 * @example
 * ```sh
 * deno task up examples/tutorial_dumper.yaml
 * deno run -A src/launcher/up.ts --check examples/multi_camera.yaml
 * ```
 * @module
 */

import { killAllChildren } from "../runtime/children.ts";
import { onShutdownSignals, signalExitCode } from "../runtime/signals.ts";
import { errorMessage, exitCodeOf, UsageError } from "../runtime/errors.ts";
import { maskUrlCredentials } from "../runtime/log.ts";
import { loadPipeline, type Pipeline } from "./pipeline_config.ts";
import { busLine, nodeProcess, PipelineRunner, prefixWidth } from "./pipeline_runner.ts";
import { planProcesses } from "./process_plan.ts";

const USAGE = `usage: deno task up [--check] PIPELINE.yaml

Runs every node of a pipeline file, each as its own process with its own permissions (the RTSP nodes up to
cameras_per_process to a process), until SIGINT/SIGTERM.
  --check     check the file and print each node's command line, then exit
  -h, --help  show this help`;

/** The command line of each node, secrets in URLs masked: what `--check` prints. */
function describe(p: Pipeline): string[] {
  const lines = [`${p.label}: ${p.nodes.length} node(s), in start order:`];
  if (p.redis) lines.push(`  redis: ${p.redis.mode === "url" ? maskUrlCredentials(p.redis.url) : "private"}`);
  const bus = busLine(p, p.redis?.mode === "url" ? { REDIS_URL: p.redis.url } : {});
  if (bus) lines.push(`  ${bus} (MSIGHT_BUS_URL of every node)`);
  for (const plan of planProcesses(p.nodes, p.camerasPerProcess)) {
    const spec = nodeProcess(plan, {}, ".");
    const what = plan.nodes.length > 1
      ? `${plan.name} (${plan.nodes.map((n) => n.name).join(", ")})`
      : `${plan.name} (${plan.nodes[0].type})`;
    lines.push(`  ${what}: deno ${maskUrlCredentials(spec.args.join(" "))}`);
  }
  return lines;
}

function parseArgs(args: string[]): { file?: string; check: boolean; help: boolean } {
  let file: string | undefined;
  let check = false;
  for (const a of args) {
    if (a === "-h" || a === "--help") return { check, help: true };
    if (a === "--check") check = true;
    else if (a.startsWith("-")) throw new UsageError(`up: unrecognized argument ${a} (see --help)`);
    else if (file) throw new UsageError(`up: one pipeline file at a time (got ${file} and ${a})`);
    else file = a;
  }
  return { file, check, help: false };
}

async function main(args: string[]): Promise<number> {
  const opts = parseArgs(args);
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (!opts.file) {
    throw new UsageError("up: expected a pipeline file: deno task up PIPELINE.yaml (see --help)");
  }
  const pipeline = await loadPipeline(opts.file);
  const say = (line: string) => console.log(`${"up".padEnd(prefixWidth(pipeline))} | ${line}`);
  for (const w of pipeline.warnings) say(`warning: ${w}`);
  for (const n of pipeline.notes) say(n);
  if (opts.check) {
    console.log(describe(pipeline).join("\n"));
    return 0;
  }

  // Listen before starting anything, so a signal during the start still stops what was started.
  const stop = Promise.withResolvers<Deno.Signal>();
  onShutdownSignals({
    signals: ["SIGINT", "SIGTERM", "SIGHUP"],
    onStop: (sig) => stop.resolve(sig),
    onRepeat(sig) {
      say(`received ${sig} again: killing every node now`);
      killAllChildren("SIGKILL");
      Deno.exit(signalExitCode(sig));
    },
  });

  const runner = await PipelineRunner.start(pipeline, { log: (l) => console.log(l) });
  const sig = await stop.promise;
  await runner.stop(`received ${sig}`);
  return 0;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    console.error(err instanceof UsageError ? errorMessage(err) : `up: error: ${errorMessage(err)}`);
    code = exitCodeOf(err);
    killAllChildren("SIGKILL");
  }
  Deno.exit(code);
}
