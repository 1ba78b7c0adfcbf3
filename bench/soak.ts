/**
 * Soak benchmark (issue 15, item 3): four cameras (the capacity bench's pre-encoded 720p clip, served as it is) → four
 * RTSP nodes (`--max-fps 12.5`, so the aggregator's 10 fps grid thins some) → one aggregator → one dumper, on a
 * private Redis, for `SOAK_DURATION_S`. Then the cameras' nodes are stopped, the aggregator closes its last segments
 * (`--max-idle`), and every frame is accounted for, per sensor, from the nodes' metrics:
 *
 *   RTSP node `frames_published_total` = aggregator `frames_accounted_total{sensor}` summed over outcomes
 *   (segment, thinned, duplicate, late, unsupported, crash, or why a segment was lost)
 *
 * and the frames in the dumper's segment files match the `segment` outcome. Every 10 s it samples the RSS of every
 * process tree (each node with its ffmpeg), each process' open file descriptors and Redis' `used_memory`; it fails on an
 * unexplained frame or on growth: a least-squares slope over the run after its warm-up (the first quarter, at least
 * 60 s: the frame stream fills up to its age cap, the segment stream to its 8 entries) that would add more than 10% (and more than a floor: 8 MiB, 4
 * fds) over that window.
 *
 * | variable          | default | meaning                      |
 * |-------------------|---------|------------------------------|
 * | `SOAK_DURATION_S` | 1800    | how long the cameras stream  |
 * | `SOAK_CAMERAS`    | 4       | cameras (and RTSP nodes)     |
 *
 * `deno task bench soak-5m` is the 5-minute variant (CI-sized).
 *
 * @example
 * ```sh
 * SOAK_DURATION_S=120 deno task bench soak
 * ```
 * @module
 */

import { startRedis, type TestRedis } from "../test/helpers/redis_server.ts";
import type { RtspServer } from "../test/helpers/rtsp_server.ts";
import { freePort } from "../test/helpers/net.ts";
import { permissionFlags } from "../src/launcher/permissions.ts";
import { captureSpan, dumperSegments, frameIdsOf } from "./faults/audit.ts";
import { makeClip, redisPid, startCameras, treeRss } from "./capacity.ts";
import { PipelineNode } from "./pipeline.ts";
import { streamKey } from "../src/bus/stream.ts";
import type { BenchRow } from "./table.ts";

/** Run settings; see the module doc. */
export interface SoakConfig {
  durationS: number;
  cameras: number;
}

/**
 * The configuration from the environment.
 *
 * @example
 * ```ts
 * soakConfigFromEnv().durationS; // 1800 unless SOAK_DURATION_S is set
 * ```
 */
export function soakConfigFromEnv(): SoakConfig {
  const d = Number(Deno.env.get("SOAK_DURATION_S") ?? 1800);
  const n = Number(Deno.env.get("SOAK_CAMERAS") ?? 4);
  return {
    durationS: Number.isFinite(d) && d > 0 ? d : 1800,
    cameras: Number.isInteger(n) && n > 0 ? n : 4,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SAMPLE_MS = 10_000;
/** The outcomes of `frames_accounted_total` named in the balance (any other is a segment lost for that reason). */
const OUTCOMES = ["segment", "thinned", "duplicate", "late", "skipped", "unsupported", "crash"];
const MiB = 2 ** 20;

/** One value over time: seconds since the start, and the value. */
type Series = { t: number; v: number }[];

/**
 * The least-squares slope of `s` after its warm-up, per second, and the growth it makes over that window.
 *
 * @example
 * ```ts
 * growth([{ t: 0, v: 1 }, { t: 10, v: 2 }, { t: 20, v: 3 }], 0).slope; // 0.1
 * ```
 */
export function growth(s: Series, warmupS: number): { slope: number; over: number; mean: number } {
  const pts = s.filter((p) => p.t >= warmupS);
  if (pts.length < 3) return { slope: 0, over: 0, mean: pts[0]?.v ?? 0 };
  const n = pts.length;
  const mt = pts.reduce((a, p) => a + p.t, 0) / n, mv = pts.reduce((a, p) => a + p.v, 0) / n;
  const num = pts.reduce((a, p) => a + (p.t - mt) * (p.v - mv), 0);
  const den = pts.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  const slope = den > 0 ? num / den : 0;
  return { slope, over: slope * (pts.at(-1)!.t - pts[0].t), mean: mv };
}

/**
 * Open file descriptors of a process alone: its children (the aggregator's encoders, one per open segment) come and
 * go with segment boundaries, and each leaves nothing open behind in its parent if the parent closes its pipes.
 */
function openFds(pid: number): number {
  let n = 0;
  try {
    for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  } catch {
    // Gone meanwhile.
  }
  return n;
}

/** Redis' `used_memory` and the frame stream's own size (`MEMORY USAGE`), bytes (NaN when it does not answer). */
async function redisMemory(redis: TestRedis): Promise<{ used: number; frames: number }> {
  const { Redis } = await import("ioredis");
  const c = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  try {
    await c.connect();
    const used = Number(/used_memory:(\d+)/.exec(await c.info("memory"))?.[1] ?? NaN);
    const frames = Number(await c.call("MEMORY", "USAGE", streamKey("soak_frames"), "SAMPLES", "0") ?? NaN);
    return { used, frames };
  } catch {
    return { used: NaN, frames: NaN };
  } finally {
    c.disconnect();
  }
}

/** Sum of a metric's series whose labels include every `key="value"` in `labels`. */
function seriesSum(series: Map<string, number>, name: string, labels: string[]): number {
  let total = 0;
  for (const [k, v] of series) {
    if (k.startsWith(`${name}{`) && labels.every((l) => k.includes(l))) total += v;
  }
  return total;
}

/**
 * Runs the soak; see the module doc.
 *
 * @example
 * ```ts
 * const rows = await soakBench({ durationS: 120, cameras: 4 });
 * ```
 */
export async function soakBench(cfg = soakConfigFromEnv()): Promise<BenchRow[]> {
  const root = await Deno.makeTempDir({ prefix: "msight-soak-" });
  const saveDir = `${root}/videos`;
  let redis: TestRedis | undefined;
  let cams: RtspServer[] = [];
  const nodes: PipelineNode[] = [];
  const rows: BenchRow[] = [];
  const row = (metric: string, value: number, unit: string, goal: string, pass: boolean, note: string) =>
    rows.push({ bench: "soak", metric, value, unit, goal, pass, note });
  try {
    const clip = await makeClip(root, cfg.durationS + 30);
    [redis, cams] = await Promise.all([startRedis(), startCameras(clip, cfg.cameras)]);
    const env = { ...redis.env, MSIGHT_EDGE_DEVICE_NAME: "soak" };
    const add = async (
      kind: "rtsp" | "aggregator" | "dumper",
      name: string,
      args: string[],
      perms: string[],
    ) => {
      const node = new PipelineNode(kind, name, await freePort(), args, env, perms);
      nodes.push(node);
      await node.start();
      return node;
    };
    const dumper = await add("dumper", "soak_dumper", ["-st", "soak_video", "--save-dir", saveDir], [
      ...permissionFlags("dumper", { saveDir }),
    ]);
    // The aggregator first, reading the frame stream from its very first entry (--transport stream makes its group
    // before any frame), so every frame an RTSP node publishes is one the balance must find. The segment stream is
    // kept short so Redis' memory levels off within the warm-up.
    const agg = await add("aggregator", "soak_aggregator", [
      ...["-st", "soak_frames", "-pt", "soak_video", "--fps", "10", "--buffer-size", "100"],
      ...["--overlap-size", "0", "--max-idle", "5", "--transport", "stream", "--stream-maxlen", "8"],
    ], permissionFlags("aggregator"));
    const rtsp: PipelineNode[] = [];
    for (const [i, c] of cams.entries()) {
      rtsp.push(
        await add("rtsp", `soak_rtsp_${i}`, [
          ...["-pt", "soak_frames", "-sn", `cam${i}`, "-u", c.url, "--frame-log-every", "0"],
          ...["--max-fps", "12.5", "--frame-stream-max-bytes", String(cfg.cameras * 32 * MiB)],
        ], permissionFlags("rtsp")),
      );
    }
    const procs = new Map<string, number>([
      ...rtsp.map((r, i) => [`rtsp-${i}`, r.proc!.child.pid] as [string, number]),
      ["aggregator", agg.proc!.child.pid],
      ["dumper", dumper.proc!.child.pid],
    ]);
    const rp = redisPid(redis.port);
    if (rp) procs.set("redis", rp);
    const rss = new Map<string, Series>(), fds = new Map<string, Series>();
    const mem: Series = [], frameStream: Series = [];
    const t0 = Date.now();
    const end = t0 + cfg.durationS * 1000;
    for (;;) {
      const t = (Date.now() - t0) / 1000;
      for (const [k, pid] of procs) {
        rss.set(k, [...(rss.get(k) ?? []), { t, v: treeRss(pid) }]);
        fds.set(k, [...(fds.get(k) ?? []), { t, v: openFds(pid) }]);
      }
      const m = await redisMemory(redis);
      mem.push({ t, v: m.used });
      frameStream.push({ t, v: m.frames });
      if (Date.now() >= end) break;
      await sleep(Math.min(SAMPLE_MS, end - Date.now()));
    }
    const exits = nodes.filter((n) => n.unexpectedExits.length > 0).map((n) => n.name);
    // Stop the cameras (the RTSP nodes then publish nothing more: their counts are final), then the RTSP nodes; the
    // aggregator closes its last segments after --max-idle (5 s) and the dumper writes them.
    await Promise.all(cams.map((c) => c.stop()));
    const finalPublished = new Map<string, number>();
    await Promise.all(rtsp.map(async (r, i) => {
      // ffmpeg hands over what it still had decoded once the camera's socket closes: wait for the count to settle.
      let last = -1;
      for (let k = 0; k < 15; k++) {
        await sleep(2000);
        const now = await r.metric("msight_frames_published_total");
        if (now === last) break;
        last = now;
      }
      finalPublished.set(`cam${i}`, last);
    }));
    for (const r of rtsp) await r.stop(10);
    const accounted = async () =>
      seriesSum((await agg.metrics()).series, "msight_frames_accounted_total", []) +
      (await agg.metric("msight_open_segments")) * 1e9;
    let last = -1;
    for (let i = 0; i < 30; i++) {
      await sleep(2000);
      const now = await accounted();
      if (now === last && now < 1e9) break;
      last = now;
    }
    await sleep(3000); // the dumper writes the last segments
    const aggSeries = (await agg.metrics()).series;
    const files = [...(await dumperSegments(saveDir)).entries()];
    const warmupS = Math.max(60, cfg.durationS / 4);
    const minutes = (cfg.durationS / 60).toFixed(1);
    row(
      "duration",
      cfg.durationS,
      "s",
      "",
      exits.length === 0,
      `${cfg.cameras} cameras; ` +
        (exits.length ? `unexpected exits: ${exits.join(", ")}` : "no node exited"),
    );
    for (const i of rtsp.keys()) {
      const sensor = `cam${i}`;
      const by = (outcome: string) =>
        seriesSum(aggSeries, "msight_frames_accounted_total", [`sensor="${sensor}"`, `outcome="${outcome}"`]);
      const total = seriesSum(aggSeries, "msight_frames_accounted_total", [`sensor="${sensor}"`]);
      const inFiles = files.filter(([stem]) => stem.startsWith(`${sensor}_`))
        .reduce((a, [, json]) => a + frameIdsOf(json).length, 0);
      const pub = finalPublished.get(sensor) ?? NaN;
      const unexplained = pub - total;
      row(
        `frames of ${sensor}`,
        unexplained,
        "unexplained",
        "0, and files = segment",
        unexplained === 0 && inFiles === by("segment"),
        `published ${pub} = ${OUTCOMES.map((o) => `${o} ${by(o)}`).join(" + ")} + lost with a segment ${
          total - OUTCOMES.reduce((x, o) => x + by(o), 0)
        }; ${inFiles} frames in the dumper's files`,
      );
    }
    const kinds = [...new Set([...procs.keys()].map((k) => k.replace(/-\d+$/, "")))];
    for (const kind of kinds) {
      const keys = [...procs.keys()].filter((k) => k.replace(/-\d+$/, "") === kind);
      const worst = keys.map((k) => ({ k, g: growth(rss.get(k)!, warmupS) }))
        .sort((a, b) => b.g.over - a.g.over)[0];
      const ok = worst.g.over <= Math.max(8 * MiB, 0.1 * worst.g.mean);
      row(
        `RSS slope, ${kind}`,
        worst.g.slope * 3600 / MiB,
        "MiB/h",
        "+≤ max(8 MiB, 10%) over the run",
        ok,
        `${keys.length > 1 ? `worst of ${keys.length} (${worst.k}); ` : ""}mean ${
          (worst.g.mean / MiB).toFixed(0)
        } MiB, ${(worst.g.over / MiB).toFixed(1)} MiB over ${minutes} min after warm-up`,
      );
      const fd = keys.map((k) => ({ k, g: growth(fds.get(k)!, warmupS), last: fds.get(k)!.at(-1)!.v }))
        .sort((a, b) => b.g.over - a.g.over)[0];
      row(
        `open fds, ${kind}`,
        fd.last,
        "fds",
        "+≤ 4 over the run",
        fd.g.over <= 4,
        `${fd.g.over >= 0 ? "+" : ""}${fd.g.over.toFixed(1)} by the slope after warm-up`,
      );
    }
    const gm = growth(mem.filter((p) => Number.isFinite(p.v)), warmupS);
    row(
      "Redis used_memory",
      (mem.at(-1)?.v ?? NaN) / MiB,
      "MiB",
      "flat after the frame stream's age cap",
      gm.over <= Math.max(8 * MiB, 0.1 * gm.mean),
      `${(gm.over / MiB).toFixed(1)} MiB by the slope after warm-up (frames, 8 segments, the rest)`,
    );
    const gf = growth(frameStream.filter((p) => Number.isFinite(p.v)), warmupS);
    row(
      "frame stream (MEMORY USAGE), per camera",
      gf.mean / cfg.cameras / MiB,
      "MiB",
      "flat (--frame-stream-max-age 30 s)",
      gf.over <= Math.max(8 * MiB, 0.1 * gf.mean),
      `mean after warm-up, ${cfg.cameras} cameras at 12.5 fps 1280×720 JPEG q50 (--max-fps 12.5); ` +
        `${(gf.over / MiB).toFixed(1)} MiB by the slope`,
    );
    const segs = files.map(([, json]) => captureSpan(json).frames);
    row(
      "segments",
      segs.length,
      "",
      "",
      segs.length > 0,
      `${segs.reduce((a, b) => a + b, 0)} frames in the dumper's files`,
    );
  } finally {
    for (const n of nodes.toReversed()) await n.stop(10).catch(() => {});
    await Promise.all(cams.map((c) => c.stop()));
    await redis?.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  return rows;
}
