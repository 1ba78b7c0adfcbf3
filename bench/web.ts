/**
 * Web console benchmark (issue 18): the console's CPU, and the pipeline's, with no page open and with one page
 * showing 4 live previews (4 real RTSP cameras → 4 RTSP nodes on a private Redis; headless Chromium as the
 * viewer, its own CPU reported apart), and the time from opening the page to the first preview shown (navigation
 * start → the first `/api/preview` response, from the page's Resource Timing). Each phase is `WEB_BENCH_S`
 * seconds (20) after a 5 s warm-up. The aggregator and dumper are left out: previews never touch them.
 *
 * @example
 * ```sh
 * WEB_BENCH_S=15 deno task bench web
 * ```
 * @module
 */

import { startRedis } from "../test/helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../test/helpers/rtsp_server.ts";
import { type NodeProcess, startNode } from "../test/helpers/process.ts";
import { launchChromium } from "../test/helpers/chromium.ts";
import { freePort } from "../test/helpers/net.ts";
import { permissionFlags } from "../src/launcher/permissions.ts";
import { delay } from "../src/runtime/async.ts";
import { cpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const CAMERAS = 4;

/** A process and its descendants, by parent pid from `/proc/<pid>/stat` (a child spawned from another thread of
 * Deno is not in `/proc/<pid>/task/<pid>/children`). */
function descendants(root: number): number[] {
  const parent = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(ppid, [...(parent.get(ppid) ?? []), Number(e.name)]);
    } catch {
      // The process ended while we listed /proc: nothing to count.
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(parent.get(out[i]) ?? []));
  return out;
}

/** CPU seconds of a process tree (live processes, plus the children they already reaped). */
function treeCpu(pid: number): number {
  return descendants(pid).reduce((s, p) => s + cpuSeconds(p), 0);
}

async function cpuOver(pids: () => number[], seconds: number): Promise<number[]> {
  const before = pids().map((p) => treeCpu(p));
  await delay(seconds * 1000);
  return pids().map((p, i) => (treeCpu(p) - before[i]) / seconds * 100);
}

/** Runs the benchmark; rows are % of one core unless said otherwise. */
export async function webBench(): Promise<BenchRow[]> {
  const windowS = Number(Deno.env.get("WEB_BENCH_S") ?? 20);
  const redis = await startRedis();
  const cams: RtspServer[] = [];
  const nodes: NodeProcess[] = [];
  let webNode: NodeProcess | undefined; // stopped in finally, like the rest
  const rows: BenchRow[] = [];
  try {
    for (let i = 0; i < CAMERAS; i++) {
      cams.push(await startRtspServer({ source: "mcity", path: `/bench-web-${i}` }));
    }
    for (let i = 0; i < CAMERAS; i++) {
      nodes.push(startNode(
        "nodes/rtsp.ts",
        [
          "-n",
          `rtsp_${i}`,
          "-pt",
          `cam_topic_${i}`,
          "-sn",
          `cam_${i}`,
          "-u",
          cams[i].url,
          "--logging-level",
          "WARNING",
        ],
        redis.env,
        ["--no-prompt", ...permissionFlags("rtsp")],
      ));
    }
    const port = freePort();
    const web = webNode = startNode("nodes/web.ts", ["-n", "console", "--port", `${port}`], redis.env, [
      "--no-prompt",
      ...permissionFlags("web"),
    ]);
    await web.waitForLine(/console on http/, 30_000);
    // Wait for every camera to reach the console (topics are looked up every 5 s).
    const deadline = Date.now() + 60_000;
    for (;;) {
      const cams = await (await fetch(`http://127.0.0.1:${port}/api/cameras`)).json() as unknown[];
      if (cams.length === CAMERAS) break;
      if (Date.now() > deadline) {
        throw new Error(`only ${cams.length} of ${CAMERAS} cameras reached the console`);
      }
      await delay(500);
    }
    await delay(5000);
    const pipelinePids = () => nodes.map((n) => n.child.pid);
    const sumPipeline = (v: number[]) => v.reduce((a, b) => a + b, 0);
    const idle = await cpuOver(() => [web.child.pid, ...pipelinePids()], windowS);

    const browser = await launchChromium();
    try {
      const page = await browser.newPage(1280, 1000);
      await page.goto(`http://127.0.0.1:${port}/#cameras`);
      const firstMs = await page.waitFor<number>(
        `(() => { const e = performance.getEntriesByType("resource").find((r) => r.name.includes("/api/preview"));
          return e ? e.responseEnd : 0; })()`,
        20_000,
        "a first preview",
      );
      await page.waitFor(
        `document.querySelectorAll("#cams img").length === ${CAMERAS} && [...document.querySelectorAll("#cams img")].every((i) => i.naturalWidth > 0)`,
        20_000,
        "4 previews shown",
      );
      await delay(3000);
      const bpid = browser.pid;
      const b0 = treeCpu(bpid);
      const open = await cpuOver(() => [web.child.pid, ...pipelinePids()], windowS);
      const browserCpu = (treeCpu(bpid) - b0) / windowS * 100;
      const shown = await page.evaluate<number>(
        `performance.getEntriesByType("resource").filter((r) => r.name.includes("/api/preview")).length`,
      );
      const added = open[0] - idle[0];
      rows.push(
        { bench: "web", metric: "console CPU, no page open", value: idle[0], unit: "% core" },
        {
          bench: "web",
          metric: `console CPU, ${CAMERAS} live previews open`,
          value: open[0],
          unit: "% core",
        },
        {
          bench: "web",
          metric: "console CPU added by the open page",
          value: added,
          unit: "% core",
          goal: "< 3",
          pass: added < 3,
          note: `${shown} preview images fetched in the ${windowS + 3} s the page was open`,
        },
        {
          bench: "web",
          metric: `pipeline CPU (${CAMERAS} rtsp nodes), no page`,
          value: sumPipeline(idle.slice(1)),
          unit: "% core",
        },
        {
          bench: "web",
          metric: `pipeline CPU (${CAMERAS} rtsp nodes), page open`,
          value: sumPipeline(open.slice(1)),
          unit: "% core",
          note: "previews are read from the bus: the nodes are not asked for anything",
        },
        { bench: "web", metric: "headless Chromium showing the page", value: browserCpu, unit: "% core" },
        { bench: "web", metric: "page open → first preview received", value: firstMs, unit: "ms" },
      );
    } finally {
      await browser.close();
    }
  } finally {
    await webNode?.stop();
    for (const n of nodes) await n.stop();
    for (const c of cams) await c.stop();
    await redis.stop();
  }
  return rows;
}
