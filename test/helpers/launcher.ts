/**
 * Helpers of the `deno task up` tests: a pipeline file for a test camera, the segments on disk, and the processes
 * of a pipeline (found through /proc, so a test can check that none is left).
 *
 * @example
 * ```ts
 * import type { NodeProcess } from "./process.ts";
 * import { descendants, pipelineYaml, running } from "./launcher.ts";
 * declare const up: NodeProcess;
 * const yaml = pipelineYaml({ camera: "rtsp://127.0.0.1:8554/x", sink: "  - {name: d, node: dumper, ...}" });
 * const procs = await descendants(up.child.pid);
 * console.log((await running(procs)).length);
 * ```
 * @module
 */
import { waitFor } from "./net.ts";
import type { NodeProcess } from "./process.ts";

/**
 * A pipeline file: a private Redis, the test camera into an aggregator of 2 s segments (20 frames at 10 fps), and
 * `sink` (YAML list items under `nodes:`).
 *
 * @example
 * ```ts
 * import type { RtspServer } from "./rtsp_server.ts";
 * declare const cam: RtspServer;
 * pipelineYaml({ camera: cam.url, sink: "  - {name: d, node: dumper, flags: {st: aggregated_video, sd: /x}}" });
 * ```
 */
export function pipelineYaml(o: { camera: string; sink: string; env?: string }): string {
  return `# written by a test
redis:
  start: true
device: up-test-device
${o.env ?? ""}
nodes:
  - name: rtsp_node
    node: rtsp
    flags:
      publish-topic: rtsp_topic
      sensor-name: rtsp_sensor
      url: ${o.camera}
      rtsp-transport: tcp
      frame-log-every: 20
  - name: image-aggregator
    node: aggregator
    flags:
      subscribe-topic: rtsp_topic
      publish-topic: aggregated_video
      fps: 10
      buffer-size: 20
      overlap-size: 0
${o.sink}
`;
}

/**
 * The `.json` files in `dir` (complete segments: the dumper writes the `.json` last), sorted; none when `dir` is
 * missing.
 *
 * @example
 * ```ts
 * const n = (await jsonFiles("/tmp/videos")).length;
 * ```
 */
export async function jsonFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".json")) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/**
 * Pids of the processes whose command line matches `pattern` (`pgrep -f`).
 *
 * @example
 * ```ts
 * const [pid] = await pgrep("nodes/dumper.ts .*--save-dir=/tmp/x");
 * ```
 */
export async function pgrep(pattern: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim()).map(Number);
}

/** A process seen in /proc: its start time tells it apart from a later process with the same pid. */
export interface ProcInfo {
  pid: number;
  start: string;
  cmd: string;
}

function procInfo(pid: number): (ProcInfo & { ppid: number }) | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces and parentheses).
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
    return { pid, ppid: Number(rest[1]), start: rest[19], cmd };
  } catch {
    return undefined; // exited meanwhile
  }
}

/**
 * Every process below `pid` (children, grandchildren...), now.
 *
 * @example
 * ```ts
 * import type { NodeProcess } from "./process.ts";
 * declare const up: NodeProcess;
 * const procs = await descendants(up.child.pid);
 * ```
 */
export async function descendants(pid: number): Promise<ProcInfo[]> {
  const all: (ProcInfo & { ppid: number })[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const info = procInfo(Number(e.name));
    if (info) all.push(info);
  }
  const out: ProcInfo[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const p of all.filter((x) => x.ppid === parent)) {
      out.push({ pid: p.pid, start: p.start, cmd: p.cmd });
      queue.push(p.pid);
    }
  }
  return out;
}

/**
 * Those of `procs` that still run (same pid and start time; a zombie counts as gone).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * declare const procs: ProcInfo[];
 * assert.deepEqual(await running(procs), []);
 * ```
 */
export function running(procs: ProcInfo[]): Promise<ProcInfo[]> {
  return Promise.resolve(procs.filter((p) => {
    const now = procInfo(p.pid);
    if (!now || now.start !== p.start) return false;
    try {
      return !/^\S+ \(.*\) Z /.test(Deno.readTextFileSync(`/proc/${p.pid}/stat`));
    } catch {
      return false;
    }
  }));
}

/**
 * Waits until the `up` run's aggregator has published one more segment, then 0.7 s (7 frames at 10 fps): a stop
 * sent then falls mid-segment, so there is a partial segment to flush (right after a segment closes there would
 * be nothing).
 *
 * @example
 * ```ts
 * import { midSegment } from "./launcher.ts";
 * import type { NodeProcess } from "./process.ts";
 * declare const up: NodeProcess;
 * await midSegment(up);
 * up.kill("SIGTERM");
 * ```
 */
export async function midSegment(up: NodeProcess): Promise<void> {
  const published = () => up.stdout.filter((l) => /^image-aggregator \| .*published segment/.test(l)).length;
  const seen = published();
  await waitFor(() => published() > seen, 20_000, "the next segment published");
  await new Promise((r) => setTimeout(r, 700));
}
