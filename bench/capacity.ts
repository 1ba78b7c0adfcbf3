/**
 * Capacity benchmark (issue 7): how many 1280×720 25 fps cameras this machine carries. For N = 1, 2, 3, ...:
 * N real RTSP streams (a clip pre-encoded once from the Mcity frames, served by GStreamer as it is: no decode or
 * re-encode on the server) → N RTSP nodes → one aggregator at `--fps 10` → one dumper, on a private Redis, for the
 * run's duration. N is sustained when no frame was dropped (RTSP nodes: `frames_dropped_total`,
 * `frames_not_published_total`; the aggregator used 10 fps × N; no Redis disconnect) and the lag did not grow
 * (capture → segment published, from each segment's `.json`, last third vs first third). The floor: one bare ffmpeg
 * per camera doing RTSP → 10 fps H.264 segments directly (`-f segment -segment_time 10 -r 10`), judged by its output
 * frame rate. CPU (% of one core) and RSS are per process kind, divided by N. The camera servers run on the same
 * machine and are reported apart (a real camera is another box).
 *
 * | variable               | default         | meaning                                          |
 * |------------------------|-----------------|--------------------------------------------------|
 * | `CAPACITY_DURATION_S`  | 120             | measured seconds per N (after a 5 s warm-up)      |
 * | `CAPACITY_N`           | 1,2,3,...,8     | camera counts to try (stops at the first failure) |
 * | `CAPACITY_BUFFER`      | 100             | aggregator `--buffer-size` (100 at 10 fps: 10 s)  |
 * | `CAPACITY_FLOOR`       | 1               | `0` skips the bare-ffmpeg floor                   |
 * | `CAPACITY_RTSP_MAX_FPS`| 10              | the RTSP nodes' `--max-fps` (what `up` gives them for the aggregator's `--fps 10`; 0: every frame) |
 * | `CAPACITY_CAMERAS_PER_PROCESS` | 8       | RTSP nodes per process (`--next`), as `up`'s `cameras_per_process`; 1: a process each |
 *
 * @example
 * ```sh
 * CAPACITY_DURATION_S=15 CAPACITY_N=1,2 deno task bench capacity
 * ```
 * @module
 */

import { startRedis, type TestRedis } from "../test/helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../test/helpers/rtsp_server.ts";
import { permissionFlags } from "../src/launcher/permissions.ts";
import { DEFAULT_CAMERAS_PER_PROCESS } from "../src/launcher/process_plan.ts";
import { GROUP_SEPARATOR } from "../src/node/node_group.ts";
import { defaultPreset } from "../src/encode/config.ts";
import { captureSpan, dumperSegments } from "./faults/audit.ts";
import { PipelineNode } from "./pipeline.ts";
import { freePort } from "../test/helpers/net.ts";
import { childPids, cpuSeconds, peakRssBytes, pssBytes, treePids } from "./proc.ts";
import type { BenchRow } from "./table.ts";

/** Run settings; see the module doc for the environment variables. */
export interface CapacityConfig {
  durationS: number;
  counts: number[];
  bufferSize: number;
  floor: boolean;
  /** `--max-fps` of the RTSP nodes (10, what `up` gives them; 0: every frame, as MSight). */
  rtspMaxFps: number;
  /** RTSP nodes per process (`--next`; `up`'s `cameras_per_process`). */
  camerasPerProcess: number;
}

/**
 * The configuration from the environment, with the issue's values as defaults.
 *
 * @example
 * ```ts
 * capacityConfigFromEnv().counts; // [1, 2, ..., 8] unless CAPACITY_N is set
 * ```
 */
export function capacityConfigFromEnv(): CapacityConfig {
  const d = Number(Deno.env.get("CAPACITY_DURATION_S") ?? 120);
  const counts = (Deno.env.get("CAPACITY_N") ?? "1,2,3,4,5,6,7,8").split(",").map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  const b = Number(Deno.env.get("CAPACITY_BUFFER") ?? 100);
  return {
    durationS: Number.isFinite(d) && d > 0 ? d : 120,
    counts: counts.length > 0 ? counts : [1, 2, 3, 4],
    bufferSize: Number.isInteger(b) && b > 0 ? b : 100,
    floor: Deno.env.get("CAPACITY_FLOOR") !== "0",
    rtspMaxFps: Math.max(0, Number(Deno.env.get("CAPACITY_RTSP_MAX_FPS") ?? 10) || 0),
    camerasPerProcess: Math.max(
      1,
      Math.floor(Number(Deno.env.get("CAPACITY_CAMERAS_PER_PROCESS") ?? DEFAULT_CAMERAS_PER_PROCESS) || 1),
    ),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FRAMES = new URL("../test/fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
const WARMUP_MS = 5000;

/** Runs ffmpeg to completion (≤ 2 min); throws with its stderr on failure. */
async function ffmpeg(args: string[]): Promise<void> {
  const r = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-y", ...args],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  if (!r.success) throw new Error(`ffmpeg ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`);
}

/**
 * Makes the 1280×720 25 fps H.264 clip the cameras serve: the real frames encoded once (17 s, GOP 1 s, no
 * B-frames), then repeated without re-encoding until it outlasts a step. The passthrough camera (`h264file` in
 * rtsp_demo_server.py) would loop the short clip too; one long file keeps loop points out of every step.
 */
export async function makeClip(dir: string, seconds: number): Promise<string> {
  const short = `${dir}/camera-720p25-17s.mp4`, out = `${dir}/camera-720p25.mp4`;
  await ffmpeg(
    ["-framerate", "10", "-i", `${FRAMES}%04d.jpg`, "-vf", "scale=1280:720,fps=25"]
      .concat(["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "25", "-bf", "0"])
      .concat(["-pix_fmt", "yuv420p", short]),
  );
  const loops = Math.ceil(seconds / 17);
  await ffmpeg(["-stream_loop", String(loops), "-i", short, "-c", "copy", "-movflags", "+faststart", out]);
  return out;
}

const MiB = 1024 * 1024;

/** CPU seconds of a process split into its own and its children's (reaped and live): where the CPU goes. */
function cpuSplit(pid: number): { own: number; children: number } {
  try {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const x = f.slice(f.lastIndexOf(")") + 2).split(" ").map(Number);
    const own = (x[11] + x[12]) / 100, reaped = (x[13] + x[14]) / 100;
    const live = childPids(pid).reduce((s, c) => s + treePids(c).reduce((t, p) => t + cpuSeconds(p), 0), 0);
    return { own, children: reaped + live };
  } catch {
    // The process has exited: it uses no more CPU.
    return { own: 0, children: 0 };
  }
}

/** Current RSS of a process tree, bytes. */
export function treeRss(pid: number): number {
  let total = 0;
  for (const p of treePids(pid)) {
    const m = /VmRSS:\s+(\d+) kB/.exec((() => {
      try {
        return Deno.readTextFileSync(`/proc/${p}/status`);
      } catch {
        // Exited meanwhile: no memory.
        return "";
      }
    })());
    if (m) total += Number(m[1]) * 1024;
  }
  return total;
}

/** PSS now of a process tree, bytes, with its anonymous and file-backed parts. */
function treePss(pid: number): Pss {
  const out = { pss: 0, anon: 0, file: 0 };
  for (const p of treePids(pid)) {
    const x = pssBytes(p);
    out.pss += x.pss;
    out.anon += x.anon;
    out.file += x.file;
  }
  return out;
}

/** PSS of a set of processes, bytes: all of it, and its anonymous and file-backed (shared code) parts. */
type Pss = { pss: number; anon: number; file: number };

/** Keeps, per process kind (`rtsp-0`, `rtsp-1` add up as `rtsp`), the sample with the highest PSS. */
function keepPeakPss(pids: Map<string, number>, peak: Map<string, Pss>): void {
  const now = new Map<string, Pss>();
  for (const [k, pid] of pids) {
    const kind = k.replace(/-\d+$/, "");
    const x = treePss(pid), acc = now.get(kind) ?? { pss: 0, anon: 0, file: 0 };
    now.set(kind, { pss: acc.pss + x.pss, anon: acc.anon + x.anon, file: acc.file + x.file });
  }
  for (const [kind, x] of now) if (x.pss > (peak.get(kind)?.pss ?? 0)) peak.set(kind, x);
}

/** RSS now of each process kind's trees (`rtsp-0`, `rtsp-1` add up as `rtsp`), bytes. */
function rssByKind(pids: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, pid] of pids) {
    const kind = k.replace(/-\d+$/, "");
    out.set(kind, (out.get(kind) ?? 0) + treeRss(pid));
  }
  return out;
}

/** The redis-server serving `port` (its process title names the port). */
export function redisPid(port: number): number | undefined {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.includes("redis-server") && cmd.includes(`:${port}`)) return Number(e.name);
    } catch {
      // Gone.
    }
  }
  return undefined;
}

/** CPU seconds (own / children) of named processes at one instant. */
type CpuSnapshot = Map<string, { own: number; children: number }>;

function snapshot(pids: Map<string, number>): CpuSnapshot {
  return new Map([...pids].map(([k, pid]) => [k, cpuSplit(pid)]));
}

/** Per-kind CPU % of one core over `seconds`, from two snapshots (`rtsp-1`, `rtsp-2` add up as `rtsp`). */
function cpuByKind(
  a: CpuSnapshot,
  b: CpuSnapshot,
  seconds: number,
): Map<string, { own: number; children: number }> {
  const out = new Map<string, { own: number; children: number }>();
  for (const [k, v1] of b) {
    const v0 = a.get(k) ?? { own: 0, children: 0 };
    const kind = k.replace(/-\d+$/, "");
    const o = out.get(kind) ?? { own: 0, children: 0 };
    o.own += (v1.own - v0.own) / seconds * 100;
    o.children += (v1.children - v0.children) / seconds * 100;
    out.set(kind, o);
  }
  return out;
}

/** What one N measured. */
interface StepResult {
  n: number;
  sustained: boolean;
  why: string[];
  /** % of one core per camera, by process kind (own + children). */
  cpu: Map<string, { own: number; children: number }>;
  cpuPerCamera: number;
  cameraServerCpuPerCamera: number;
  rssPerCameraMiB: number;
  /** Peak RSS by process kind (all of that kind's processes and their children), bytes. */
  rss?: Map<string, number>;
  /** Peak PSS by process kind (shared code counted once over all processes, not once per process). */
  pss: Map<string, Pss>;
  detail: string;
}

/** Starts N camera servers of the clip (in parallel) and returns them. */
export function startCameras(clip: string, n: number): Promise<RtspServer[]> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        startRtspServer({
          source: "h264file",
          file: clip,
          path: `/cap${i}`,
          protocols: "tcp",
          startTimeoutS: 30,
          // The clip outlasts the step (makeClip), so no loop: the looping server's first seek can race a
          // client's PLAY under load and leave that camera refusing (see tools/rtsp_demo_server.py).
          loop: false,
        }),
    ),
  );
}

const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

/** Lag (s) from the last frame's capture to the segment's creation, per segment, in segment order. */
async function segmentLags(dir: string, after: number): Promise<number[]> {
  const segs = [...(await dumperSegments(dir)).values()].map((json) => {
    const created = Number(/"creation_timestamp"\s*:\s*([\d.]+)/.exec(json)?.[1] ?? NaN);
    return { ...captureSpan(json), created };
  }).filter((s) => s.first >= after && Number.isFinite(s.created)).sort((a, b) => a.created - b.created);
  return segs.map((s) => s.created - s.last);
}

const mean = (xs: number[]) => (xs.length > 0 ? sum(xs) / xs.length : NaN);

/** N cameras through our nodes. */
async function nodesStep(clip: string, n: number, cfg: CapacityConfig): Promise<StepResult> {
  const root = await Deno.makeTempDir({ prefix: "msight-capacity-" });
  const saveDir = `${root}/videos`;
  let redis: TestRedis | undefined;
  let cams: RtspServer[] = [];
  const nodes: PipelineNode[] = [];
  try {
    [redis, cams] = await Promise.all([startRedis(), startCameras(clip, n)]);
    const env = { ...redis.env, MSIGHT_EDGE_DEVICE_NAME: "capacity" };
    const add = async (
      kind: "rtsp" | "aggregator" | "dumper",
      name: string,
      args: string[],
      perms: string[],
    ) => {
      const node = new PipelineNode(kind, name, freePort(), args, env, perms);
      nodes.push(node);
      await node.start();
      return node;
    };
    const dumper = await add("dumper", "cap_dumper", ["-st", "cap_video", "--save-dir", saveDir], [
      ...permissionFlags("dumper", { saveDir }),
    ]);
    const agg = await add("aggregator", "cap_aggregator", [
      "-st",
      "cap_frames",
      "-pt",
      "cap_video",
      "--fps",
      "10",
      "--buffer-size",
      String(cfg.bufferSize),
      "--overlap-size",
      "0",
    ], permissionFlags("aggregator"));
    const rtspArgs = (i: number) => [
      "-pt",
      "cap_frames",
      "-sn",
      `cam${i}`,
      "-u",
      cams[i].url,
      "--frame-log-every",
      "0",
      ...(cfg.rtspMaxFps > 0 ? ["--max-fps", String(cfg.rtspMaxFps)] : []),
    ];
    // As `up` runs them: `cameras_per_process` RTSP nodes per process, the first started as the process, the
    // others after `--next`; each member still serves its own /metrics (read through a node never started).
    const rtsp: PipelineNode[] = [];
    const rtspProcs: PipelineNode[] = [];
    for (let first = 0; first < n; first += cfg.camerasPerProcess) {
      const members = Array.from(
        { length: Math.min(cfg.camerasPerProcess, n - first) },
        (_, k) => ({ i: first + k, port: freePort() }),
      );
      const views = members.slice(1).map((m) =>
        new PipelineNode("rtsp", `cap_rtsp_${m.i}`, m.port, rtspArgs(m.i), env, permissionFlags("rtsp"))
      );
      const rest = members.slice(1).flatMap((m) => [
        GROUP_SEPARATOR,
        "-n",
        `cap_rtsp_${m.i}`,
        "--metrics-port",
        String(m.port),
        ...rtspArgs(m.i),
      ]);
      const proc = new PipelineNode(
        "rtsp",
        `cap_rtsp_${first}`,
        members[0].port,
        [...rtspArgs(first), ...rest],
        env,
        permissionFlags("rtsp"),
      );
      nodes.push(proc);
      rtspProcs.push(proc);
      rtsp.push(proc, ...views);
    }
    await Promise.all(rtspProcs.map((p) => p.start()));
    await sleep(WARMUP_MS);
    const pids = new Map<string, number>([
      ...rtspProcs.map((r, i) => [`rtsp-${i}`, r.proc!.child.pid] as [string, number]),
      ["aggregator", agg.proc!.child.pid],
      ["dumper", dumper.proc!.child.pid],
    ]);
    const rp = redisPid(redis.port);
    if (rp) pids.set("redis", rp);
    const camPids = new Map(cams.map((c, i) => [`camera-${i}`, c.pid] as [string, number]));
    const counters = async () => ({
      rtsp: await Promise.all(rtsp.map((r) => r.metrics())),
      agg: await agg.metrics(),
    });
    const m0 = await counters();
    const c0 = snapshot(pids), k0 = snapshot(camPids);
    const start = Date.now() / 1000;
    const peakRss = new Map<string, number>();
    const peakPss = new Map<string, Pss>();
    const end = Date.now() + cfg.durationS * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(2000, Math.max(0, end - Date.now())));
      for (const [kind, bytes] of rssByKind(pids)) peakRss.set(kind, Math.max(peakRss.get(kind) ?? 0, bytes));
      keepPeakPss(pids, peakPss);
    }
    const m1 = await counters();
    const c1 = snapshot(pids), k1 = snapshot(camPids);
    const d = (a: Map<string, number>, b: Map<string, number>, k: string) =>
      (b.get(k) ?? 0) - (a.get(k) ?? 0);
    const received = sum(
      rtsp.map((_, i) => d(m0.rtsp[i].byName, m1.rtsp[i].byName, "msight_frames_received_total")),
    );
    const dropped = sum(
      rtsp.map((_, i) => d(m0.rtsp[i].byName, m1.rtsp[i].byName, "msight_frames_dropped_total")),
    );
    const notPub = sum(
      rtsp.map((_, i) => d(m0.rtsp[i].byName, m1.rtsp[i].byName, "msight_frames_not_published_total")),
    );
    const used = d(m0.agg.byName, m1.agg.byName, "msight_frames_used_total");
    const late = d(m0.agg.series, m1.agg.series, 'msight_frames_dropped_total{reason="late"}');
    const disconnects = [...rtspProcs, agg, dumper].flatMap((x) => x.lines())
      .filter((l) => /connection (lost|closed)/.test(l)).length;
    const exits = [...rtspProcs, agg, dumper].filter((x) => x.unexpectedExits.length > 0).length;
    // Lag: segments that started after the warm-up; growing when the last third is 1 s later than the first.
    await sleep(1000);
    const lags = await segmentLags(saveDir, start);
    const third = Math.max(1, Math.floor(lags.length / 3));
    const lagFirst = mean(lags.slice(0, third)), lagLast = mean(lags.slice(-third));
    const expectedUsed = 10 * n * cfg.durationS;
    const why: string[] = [];
    // What the RTSP nodes should publish: every frame, or --max-fps of them.
    const camFps = cfg.rtspMaxFps > 0 ? Math.min(25, cfg.rtspMaxFps) : 25;
    if (received < camFps * n * cfg.durationS - Math.max(0.03 * camFps * n * cfg.durationS, camFps * n)) {
      why.push(`cameras delivered ${(received / n / cfg.durationS).toFixed(1)} fps`);
    }
    if (dropped > 0) why.push(`${dropped} frames dropped by the RTSP nodes`);
    if (notPub > 0) why.push(`${notPub} frames not published`);
    // Slack of 3 % (at least a second of frames): counters are read a moment apart from the clock.
    if (used < expectedUsed - Math.max(0.03 * expectedUsed, 10 * n)) {
      why.push(`aggregator used ${(used / n / cfg.durationS).toFixed(2)} fps per camera (10 expected)`);
    }
    if (disconnects > 0) why.push(`${disconnects} Redis disconnects`);
    if (exits > 0) why.push(`${exits} node exits`);
    if (lags.length >= 2 && lagLast - lagFirst > 1) {
      why.push(`lag grew ${lagFirst.toFixed(2)} → ${lagLast.toFixed(2)} s`);
    }
    const cpu = cpuByKind(c0, c1, cfg.durationS);
    const total = sum([...cpu.values()].map((v) => v.own + v.children));
    const camCpu = sum([...cpuByKind(k0, k1, cfg.durationS).values()].map((v) => v.own + v.children));
    return {
      n,
      sustained: why.length === 0,
      why,
      cpu,
      cpuPerCamera: total / n,
      cameraServerCpuPerCamera: camCpu / n,
      rssPerCameraMiB: sum([...peakRss.values()]) / n / 2 ** 20,
      rss: peakRss,
      pss: peakPss,
      detail:
        `${(received / n / cfg.durationS).toFixed(1)} fps in, ${(used / n / cfg.durationS).toFixed(2)} fps ` +
        `aggregated per camera, ${dropped} dropped, ${late} late, ${lags.length} segments, lag ` +
        `${lagFirst.toFixed(2)} → ${lagLast.toFixed(2)} s`,
    };
  } finally {
    // Cleanup after the measurement: a node that fails to stop was already reported by its run.
    for (const x of nodes.toReversed()) await x.stop(5).catch(() => {});
    for (const c of cams) await c.stop();
    await redis?.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** One bare ffmpeg per camera: RTSP → 10 fps H.264 segments, the aggregator's encoder settings. */
async function floorStep(clip: string, n: number, cfg: CapacityConfig): Promise<StepResult> {
  const root = await Deno.makeTempDir({ prefix: "msight-capacity-floor-" });
  let cams: RtspServer[] = [];
  const procs: Deno.ChildProcess[] = [];
  const frames: number[] = [];
  const pumps: Promise<void>[] = [];
  const errors: string[][] = [];
  const exited: (number | string | null)[] = [];
  try {
    cams = await startCameras(clip, n);
    const spawn = (i: number) => {
      const child = new Deno.Command("ffmpeg", {
        args: [
          "-nostdin",
          "-v",
          "error",
          "-progress",
          "pipe:2",
          "-rtsp_transport",
          "tcp",
          "-i",
          cams[i].url,
          "-an",
        ]
          .concat(["-r", "10", "-c:v", "libx264", "-preset", defaultPreset("libx264"), "-crf", "23"])
          .concat(["-pix_fmt", "yuv420p"])
          .concat([
            "-f",
            "segment",
            "-segment_time",
            "10",
            "-reset_timestamps",
            "1",
            `${root}/cam${i}_%04d.mp4`,
          ]),
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      procs[i] = child;
      frames[i] = 0;
      errors[i] = [];
      exited[i] = null;
      child.status.then((st) => (exited[i] = st.signal ?? st.code));
      pumps.push(
        (async () => {
          const dec = new TextDecoder();
          for await (const chunk of child.stderr) {
            const text = dec.decode(chunk);
            for (const m of text.matchAll(/^frame=(\d+)$/gm)) frames[i] = Number(m[1]);
            // Anything that is not -progress output is ffmpeg saying what went wrong.
            errors[i].push(...text.split("\n").filter((l) => l && !/^[a-z_0-9]+=/.test(l)));
            errors[i].splice(0, Math.max(0, errors[i].length - 5));
          }
        })().catch(() => {}), // the pipe breaks when the node is killed at the end
      );
    };
    for (let i = 0; i < n; i++) spawn(i);
    await sleep(WARMUP_MS);
    // A camera server can refuse a client while it sets its stream up ("Operation not permitted"). The RTSP node
    // reconnects on its own, so a floor ffmpeg that ended in the warm-up is started again too, up to 3 times.
    const restarts: string[] = [];
    for (let attempt = 1; attempt <= 3 && exited.some((e) => e !== null); attempt++) {
      for (const [i, e] of exited.entries()) {
        if (e === null) continue;
        restarts.push(`ffmpeg ${i} restarted after exit ${e} (${errors[i].at(-1) ?? "no message"})`);
        spawn(i);
      }
      await sleep(WARMUP_MS);
    }
    const pids = new Map(procs.map((p, i) => [`ffmpeg-${i}`, p.pid] as [string, number]));
    const camPids = new Map(cams.map((c, i) => [`camera-${i}`, c.pid] as [string, number]));
    const f0 = [...frames], c0 = snapshot(pids), k0 = snapshot(camPids);
    const peakPss = new Map<string, Pss>();
    const end = Date.now() + cfg.durationS * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(2000, Math.max(0, end - Date.now())));
      keepPeakPss(pids, peakPss);
    }
    const f1 = [...frames], c1 = snapshot(pids), k1 = snapshot(camPids);
    const rss = sum(procs.map((p) => peakRssBytes(p.pid)));
    const fps = f1.map((f, i) => (f - f0[i]) / cfg.durationS);
    // -progress reports every 0.5 s: allow 3 % or one second of frames, as for the nodes.
    const minFps = 10 - Math.max(0.3, 10 / cfg.durationS);
    const why = fps.some((f) => f < minFps)
      ? [`output ${Math.min(...fps).toFixed(2)} fps (10 expected)`]
      : [];
    for (const [i, e] of exited.entries()) {
      if (e !== null) why.push(`ffmpeg ${i} exited (${e}): ${errors[i].join(" / ")}`);
      else if (fps[i] < minFps && errors[i].length > 0) why.push(`ffmpeg ${i}: ${errors[i].join(" / ")}`);
    }
    const cpu = cpuByKind(c0, c1, cfg.durationS);
    const total = sum([...cpu.values()].map((v) => v.own + v.children));
    const camCpu = sum([...cpuByKind(k0, k1, cfg.durationS).values()].map((v) => v.own + v.children));
    return {
      n,
      sustained: why.length === 0,
      why,
      cpu,
      cpuPerCamera: total / n,
      cameraServerCpuPerCamera: camCpu / n,
      rssPerCameraMiB: rss / n / 2 ** 20,
      pss: peakPss,
      detail: `output ${fps.map((f) => f.toFixed(2)).join(", ")} fps${
        restarts.map((r) => `; ${r}`).join("")
      }`,
    };
  } finally {
    for (const p of procs) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
    }
    await Promise.all(pumps);
    for (const c of cams) await c.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {}); // temporary files: best effort
  }
}

/** Where the CPU went, as text: `rtsp 31% (deno 6% + ffmpeg 25%)`, per camera. */
function cpuText(r: StepResult): string {
  return [...r.cpu].map(([k, v]) =>
    `${k} ${((v.own + v.children) / r.n).toFixed(1)}%` +
    (v.children > 0.05
      ? ` (own ${(v.own / r.n).toFixed(1)} + children ${(v.children / r.n).toFixed(1)})`
      : "")
  ).join(", ");
}

/** PSS per camera, and by kind in all (anonymous + file-backed), MiB. */
function pssText(r: StepResult): string {
  const all = [...r.pss.values()];
  const m = (b: number) => (b / MiB).toFixed(0);
  return `${(sum(all.map((x) => x.pss)) / r.n / MiB).toFixed(0)} MiB per camera (` +
    [...r.pss].map(([k, x]) => `${k} ${m(x.pss)} = ${m(x.anon)} anon + ${m(x.file)} file`).join(", ") +
    " MiB in all)";
}

function stepRow(label: string, r: StepResult): BenchRow {
  return {
    bench: "capacity",
    metric: `${label}, N = ${r.n}: CPU per camera (% of one core)`,
    value: r.cpuPerCamera,
    unit: "%",
    pass: r.sustained,
    note: `${r.sustained ? "sustained" : `not sustained: ${r.why.join("; ")}`}; ${r.detail}; RSS ` +
      `${r.rssPerCameraMiB.toFixed(0)} MiB per camera${
        r.rss
          ? ` (${[...r.rss].map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(0)}`).join(", ")} MiB in all)`
          : ""
      }; PSS ${pssText(r)}; by process per camera: ${cpuText(r)}; camera server ` +
      `${r.cameraServerCpuPerCamera.toFixed(1)}% per camera (not counted)`,
  };
}

/** Runs N = counts in order for one contender, stopping at the first N not sustained. */
async function ladder(
  label: string,
  cfg: CapacityConfig,
  step: (n: number) => Promise<StepResult>,
): Promise<{ rows: BenchRow[]; best: number; results: StepResult[] }> {
  const rows: BenchRow[] = [];
  const results: StepResult[] = [];
  let best = 0;
  for (const n of cfg.counts) {
    console.log(`capacity: ${label}, N = ${n} for ${cfg.durationS} s ...`);
    let r: StepResult;
    try {
      r = await step(n);
    } catch (err) {
      // A step that cannot even start (a node never ready) is not sustained; say why and stop climbing.
      const why = (err as Error).message.split("\n").slice(0, 3).join(" / ");
      rows.push({
        bench: "capacity",
        metric: `${label}, N = ${n}`,
        value: NaN,
        unit: "",
        pass: false,
        note: why,
      });
      // The table keeps the gist; the console gets the node's whole log tail, to find out why.
      console.log(`  error: ${(err as Error).message}`);
      break;
    }
    rows.push(stepRow(label, r));
    results.push(r);
    console.log(`  ${rows.at(-1)!.note}`);
    if (!r.sustained) break;
    best = n;
  }
  return { rows, best, results };
}

/**
 * Issue 19's goals at each N that both ladders sustained: CPU per camera ≤ 1.3× the floor's; at N = 6 (the goal's
 * count), all our processes with Redis ≤ 200 MiB RSS per camera; each RTSP node with its ffmpeg ≤ 120 MiB.
 */
function goalRows(ours: StepResult[], floor: StepResult[], camerasPerProcess: number): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const r of ours.filter((x) => x.sustained)) {
    const f = floor.find((x) => x.n === r.n && x.sustained);
    if (f) {
      const ratio = r.cpuPerCamera / f.cpuPerCamera;
      rows.push({
        bench: "capacity",
        metric: `CPU per camera, our nodes ÷ the floor, N = ${r.n}`,
        value: ratio,
        unit: "×",
        goal: "≤ 1.3",
        pass: ratio <= 1.3,
        note: `${r.cpuPerCamera.toFixed(1)}% vs ${f.cpuPerCamera.toFixed(1)}% of a core`,
      });
    }
    rows.push({
      bench: "capacity",
      metric: `RSS per camera, our processes and Redis, N = ${r.n}`,
      value: r.rssPerCameraMiB,
      unit: "MiB",
      goal: r.n === 6 ? "≤ 200 at N = 6" : "",
      pass: r.n === 6 ? r.rssPerCameraMiB <= 200 : undefined,
    });
    const pssAll = sum([...r.pss.values()].map((x) => x.pss)) / r.n / MiB;
    rows.push({
      bench: "capacity",
      metric: `PSS per camera, our processes and Redis, N = ${r.n}`,
      value: pssAll,
      unit: "MiB",
      note:
        "the same processes with shared code (deno, ffmpeg's libraries) counted once, not once per process",
    });
    const rtsp = r.rss?.get("rtsp");
    if (rtsp !== undefined) {
      const each = rtsp / r.n / MiB;
      rows.push({
        bench: "capacity",
        metric: `RSS of one RTSP node with its ffmpeg, N = ${r.n}`,
        value: each,
        unit: "MiB",
        goal: "≤ 120",
        pass: each <= 120,
        note: "peak RSS of the RTSP processes with their ffmpegs ÷ N (a process serves up to " +
          `${camerasPerProcess} camera(s))`,
      });
    }
  }
  return rows;
}

/**
 * Runs the capacity benchmark.
 *
 * @example
 * ```ts
 * const rows = await capacityBench({
 *   durationS: 15, counts: [1, 2], bufferSize: 50, floor: true, rtspMaxFps: 0, camerasPerProcess: 8,
 * });
 * ```
 */
export async function capacityBench(cfg = capacityConfigFromEnv()): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "msight-capacity-clip-" });
  try {
    // Long enough for a step: warm-up, the measured time, and a minute of starting nodes.
    const clip = await makeClip(dir, WARMUP_MS / 1000 + cfg.durationS + 60);
    const rtspNote = (cfg.rtspMaxFps > 0 ? `, rtsp --max-fps ${cfg.rtspMaxFps}` : "") +
      `, ${cfg.camerasPerProcess} camera(s) per rtsp process`;
    const ours = await ladder(
      `nodes (rtsp ×N → aggregator → dumper${rtspNote})`,
      cfg,
      (n) => nodesStep(clip, n, cfg),
    );
    const floor = cfg.floor
      ? await ladder("floor (bare ffmpeg ×N)", cfg, (n) => floorStep(clip, n, cfg))
      : { rows: [], best: NaN, results: [] };
    const tried = cfg.counts.join(", ");
    return [
      ...ours.rows,
      ...floor.rows,
      ...goalRows(ours.results, floor.results, cfg.camerasPerProcess),
      {
        bench: "capacity",
        metric:
          `largest N sustained ${cfg.durationS} s, our nodes (1280×720 25 fps → 10 fps segments${rtspNote})`,
        value: ours.best,
        unit: "cameras",
        goal: "≥ 6",
        pass: ours.best >= 6,
        note: `tried ${tried}`,
      },
      {
        bench: "capacity",
        metric: `largest N sustained ${cfg.durationS} s, bare ffmpeg per camera (the floor)`,
        value: floor.best,
        unit: "cameras",
        note: cfg.floor ? `tried ${tried}` : "skipped (CAPACITY_FLOOR=0)",
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {}); // temporary files: best effort
  }
}
