/**
 * `deno task bench rtsp-memory`: where the RTSP node's memory goes, and what its settings cost, measured side by side.
 * Several variants of the node run at once on the real test camera (the 1280×960 Mcity frames, as `bench msight`,
 * served as encoded once: `h264file`),
 * each on its own topic; each round starts them all (in a rotated order), warms up, then measures over a window: RSS
 * of the Deno process and of its ffmpeg apart (VmRSS sampled every second: mean, and VmHWM; anonymous vs file-backed;
 * threads), the V8 heap and external memory (the node's own metrics), CPU ms per published frame of each, and the
 * latency from a frame's capture time to its arrival on the bus. Variants differ only by what the node is given: ffmpeg
 * input options (inserted by a wrapper just before `-i`, so they override the node's own) and environment, Deno flags
 * and environment.
 *
 * Env: `RTSP_MEM_FPS` (10), `RTSP_MEM_ROUNDS` (3), `RTSP_MEM_WARM_S` (10), `RTSP_MEM_WINDOW_S` (20),
 * `RTSP_MEM_VARIANTS` (comma-separated names of {@linkcode VARIANTS}; default: before, now, semi1, dec1, filt1, thr16:
 * six nodes at once fit a 2-core machine, all of them at once did not).
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { startRedis } from "../test/helpers/redis_server.ts";
import { startRtspServer } from "../test/helpers/rtsp_server.ts";
import { type NodeProcess, startNode } from "../test/helpers/process.ts";
import { freePort } from "../test/helpers/net.ts";
import { decodeMessage } from "../src/bus/wire.ts";
import { IMAGE_DATA_TYPE } from "../src/bus/message.ts";
import { permissionFlags, runtimeFlags } from "../src/launcher/permissions.ts";
import { childPids, cpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const FPS = Number(Deno.env.get("RTSP_MEM_FPS") ?? 10);
const ROUNDS = Number(Deno.env.get("RTSP_MEM_ROUNDS") ?? 3);
const WARM_S = Number(Deno.env.get("RTSP_MEM_WARM_S") ?? 10);
const WINDOW_S = Number(Deno.env.get("RTSP_MEM_WINDOW_S") ?? 20);
const MIB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One way of running the node. */
interface Variant {
  name: string;
  /** What it is, for the table. */
  about: string;
  /** ffmpeg options inserted just before `-i` (so they win over the node's own input options). */
  ffmpegIn?: string[];
  /** Environment of ffmpeg alone (set by the wrapper). */
  ffmpegEnv?: Record<string, string>;
  /** `deno run` flags (besides the node's permissions). */
  deno?: string[];
  env?: Record<string, string>;
}

const AUTO = ["-threads", "0", "-filter_threads", "0"];

/**
 * The variants: "before" restores what the node did before this measurement (auto decoder and filter threads, no
 * V8 flags), "now" is what the launcher gives today; the others each change one thing from "before".
 */
export const VARIANTS: Variant[] = [
  { name: "before", about: "decoder/filter threads auto, no V8 flags", ffmpegIn: AUTO, deno: [] },
  { name: "now", about: "the node's and launcher's defaults" },
  {
    name: "dec1",
    about: "before + decoder -threads 1",
    ffmpegIn: ["-filter_threads", "0", "-threads", "1"],
    deno: [],
  },
  {
    name: "filt1",
    about: "before + -filter_threads 1",
    ffmpegIn: ["-threads", "0", "-filter_threads", "1"],
    deno: [],
  },
  {
    name: "semi1",
    about: "before + V8 --max-semi-space-size=1",
    ffmpegIn: AUTO,
    deno: ["--v8-flags=--max-semi-space-size=1"],
  },
  {
    name: "stgc",
    about: "before + V8 --single-threaded-gc",
    ffmpegIn: AUTO,
    deno: ["--v8-flags=--single-threaded-gc"],
  },
  {
    name: "arena2",
    about: "before + MALLOC_ARENA_MAX=2",
    ffmpegIn: AUTO,
    deno: [],
    env: { MALLOC_ARENA_MAX: "2" },
  },
  {
    name: "optsize",
    about: "before + V8 --optimize-for-size",
    ffmpegIn: AUTO,
    deno: ["--v8-flags=--optimize-for-size"],
  },
  {
    name: "semi2",
    about: "before + V8 --max-semi-space-size=2",
    ffmpegIn: AUTO,
    deno: ["--v8-flags=--max-semi-space-size=2"],
  },
  {
    name: "semiopt",
    about: "semi1 + optsize",
    ffmpegIn: AUTO,
    deno: ["--v8-flags=--max-semi-space-size=1,--optimize-for-size"],
  },
  {
    name: "ffmmap",
    about: "before + ffmpeg MALLOC_MMAP_THRESHOLD_=131072",
    ffmpegIn: AUTO,
    deno: [],
    ffmpegEnv: { MALLOC_MMAP_THRESHOLD_: "131072" },
  },
  {
    name: "allmmap",
    about: "before + MALLOC_MMAP_THRESHOLD_=131072 for both",
    ffmpegIn: AUTO,
    deno: [],
    env: { MALLOC_MMAP_THRESHOLD_: "131072" },
  },
  {
    name: "thr16",
    about: "decoder and filter threads 16 (what auto gives on a 16-core box)",
    ffmpegIn: ["-threads", "16", "-filter_threads", "16"],
  },
];

const FRAMES = new URL("../test/fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;

/**
 * The Mcity frames (1280×960) as the test camera encodes them (x264 ultrafast, zero latency, no B-frames, a keyframe
 * every second, limited range), at `RTSP_MEM_FPS`, repeated to outlast a round.
 */
async function makeMcityClip(dir: string): Promise<string> {
  const out = `${dir}/mcity.mp4`;
  const loops = Math.ceil((WARM_S + WINDOW_S + 30) / (170 / FPS));
  const r = await new Deno.Command("ffmpeg", {
    args: [
      "-v",
      "error",
      "-y",
      "-stream_loop",
      String(loops),
      "-framerate",
      String(FPS),
      "-i",
      `${FRAMES}%04d.jpg`,
    ]
      .concat([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        String(FPS),
        "-bf",
        "0",
      ])
      .concat(["-pix_fmt", "yuv420p", "-color_range", "tv", "-movflags", "+faststart", out]),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`making the clip failed: ${new TextDecoder().decode(r.stderr)}`);
  return out;
}

/** A wrapper that runs ffmpeg with `extra` inserted just before the first `-i`. */
async function ffmpegWrapper(dir: string, v: Variant): Promise<string> {
  const path = `${dir}/ffmpeg-${v.name}`;
  const quoted = (v.ffmpegIn ?? []).map((a) => `'${a}'`).join(" ");
  const env = Object.entries(v.ffmpegEnv ?? {}).map(([k, x]) => `export ${k}='${x}'\n`).join("");
  await Deno.writeTextFile(
    path,
    `#!/bin/bash\n${env}out=(); done=0\nfor a in "$@"; do\n  if [[ $done == 0 && $a == -i ]]; then out+=(${quoted}); done=1; fi\n` +
      `  out+=("$a")\ndone\nexec ffmpeg "\${out[@]}"\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

interface ProcMem {
  rss: number;
  hwm: number;
  anon: number;
  file: number;
  threads: number;
}

function procMem(pid: number): ProcMem | undefined {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? 0) * 1024;
    const threads = Number(/^Threads:\s+(\d+)/m.exec(s)?.[1] ?? 0);
    return { rss: kb("VmRSS"), hwm: kb("VmHWM"), anon: kb("RssAnon"), file: kb("RssFile"), threads };
  } catch {
    // The process has exited.
    return undefined;
  }
}

function ffmpegPid(denoPid: number): number | undefined {
  for (const p of childPids(denoPid)) {
    try {
      if (Deno.readTextFileSync(`/proc/${p}/comm`).trim() === "ffmpeg") return p;
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

async function scrape(port: number): Promise<Record<string, number>> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const out: Record<string, number> = {};
    for (
      const m of text.matchAll(/^msight_(heap_used_bytes|heap_total_bytes|external_memory_bytes) (\S+)$/gm)
    ) {
      out[m[1]] = Number(m[2]);
    }
    return out;
  } catch {
    // Not listening yet, or gone: no figures this time.
    return {};
  }
}

interface Sample {
  deno: ProcMem;
  ffmpeg: ProcMem;
  heap: Record<string, number>;
}

interface RoundResult {
  variant: string;
  samples: Sample[];
  denoMsPerFrame: number;
  ffmpegMsPerFrame: number;
  frames: number;
  elapsedS: number;
  latencyMs: number[];
}

const mean = (xs: number[]) => xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};

async function round(
  variants: Variant[],
  wrappers: Map<string, string>,
  redis: { port: number; env: Record<string, string> },
  camUrl: string,
): Promise<RoundResult[]> {
  const sub = new Redis({ host: "127.0.0.1", port: redis.port });
  const frames = new Map<string, number>();
  const latency = new Map<string, number[]>();
  let measuring = false;
  sub.on("messageBuffer", (ch: Buffer, msg: Buffer) => {
    const topic = ch.toString();
    frames.set(topic, (frames.get(topic) ?? 0) + 1);
    if (!measuring) return;
    const m = decodeMessage(new Uint8Array(msg));
    if (m.dataType === IMAGE_DATA_TYPE) latency.get(topic)?.push(Date.now() - m.captureTimestamp * 1000);
  });
  await sub.subscribe(...variants.map((v) => `mem_${v.name}`));
  const procs: { v: Variant; p: NodeProcess; port: number }[] = [];
  try {
    for (const v of variants) {
      const port = freePort();
      const deno = v.deno ?? runtimeFlags("rtsp");
      const args = ["-n", `mem_${v.name}`, "-pt", `mem_${v.name}`, "-sn", `cam_${v.name}`, "-u", camUrl];
      args.push("--logging-level", "WARNING", "--metrics-port", String(port));
      const w = wrappers.get(v.name);
      if (w) args.push("--ffmpeg", w);
      // The node's own permissions, but allowed to run the wrapper.
      const perms = permissionFlags("rtsp").map((f) => w && f.startsWith("--allow-run") ? "--allow-run" : f);
      const p = startNode("nodes/rtsp.ts", args, { ...redis.env, ...v.env }, [...deno, ...perms]);
      procs.push({ v, p, port });
      latency.set(`mem_${v.name}`, []);
    }
    await sleep(WARM_S * 1000);
    const cpu = (pid: number | undefined) => pid === undefined ? 0 : cpuSeconds(pid);
    const pids = procs.map(({ p }) => ({ deno: p.child.pid, ffmpeg: ffmpegPid(p.child.pid) }));
    const c0 = pids.map((x) => [cpu(x.deno), cpu(x.ffmpeg)]);
    const f0 = procs.map(({ v }) => frames.get(`mem_${v.name}`) ?? 0);
    measuring = true;
    const samples: Sample[][] = procs.map(() => []);
    const t0 = Date.now();
    while (Date.now() - t0 < WINDOW_S * 1000) {
      await sleep(1000);
      for (let i = 0; i < procs.length; i++) {
        const d = procMem(pids[i].deno);
        const f = pids[i].ffmpeg === undefined ? undefined : procMem(pids[i].ffmpeg!);
        if (d && f) samples[i].push({ deno: d, ffmpeg: f, heap: await scrape(procs[i].port) });
      }
    }
    measuring = false;
    const elapsedS = (Date.now() - t0) / 1000;
    const c1 = pids.map((x) => [cpu(x.deno), cpu(x.ffmpeg)]);
    const f1 = procs.map(({ v }) => frames.get(`mem_${v.name}`) ?? 0);
    return procs.map(({ v }, i) => {
      const n = Math.max(1, f1[i] - f0[i]);
      return {
        variant: v.name,
        samples: samples[i],
        denoMsPerFrame: (c1[i][0] - c0[i][0]) * 1000 / n,
        ffmpegMsPerFrame: (c1[i][1] - c0[i][1]) * 1000 / n,
        frames: f1[i] - f0[i],
        elapsedS,
        latencyMs: latency.get(`mem_${v.name}`) ?? [],
      };
    });
  } finally {
    sub.disconnect();
    for (const { p } of procs) p.kill("SIGTERM");
    // A graceful stop, so that each node stops its ffmpeg; SIGKILL after 5 s.
    for (const { p } of procs) await Promise.race([p.exit, sleep(5000)]);
    for (const { p } of procs) await p.stop();
  }
}

/** The benchmark; see the module doc. */
export async function rtspMemoryBench(): Promise<BenchRow[]> {
  const names = (Deno.env.get("RTSP_MEM_VARIANTS") ?? "before,now,semi1,dec1,filt1,thr16").split(",")
    .map((s) => s.trim()).filter(Boolean);
  const variants = VARIANTS.filter((v) => names.includes(v.name));
  if (variants.length !== names.length) {
    throw new Error(
      `RTSP_MEM_VARIANTS ${names.join(",")}: expected names from ${VARIANTS.map((v) => v.name)}`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "rtsp-mem-" });
  const redis = await startRedis();
  // Passthrough camera (no encode per client: the server costs almost nothing, so many variants fit at once).
  const clip = await makeMcityClip(dir);
  const cam = await startRtspServer({ source: "h264file", file: clip, path: "/mem", protocols: "tcp" });
  const all: RoundResult[] = [];
  try {
    const wrappers = new Map<string, string>();
    for (const v of variants) {
      if (v.ffmpegIn || v.ffmpegEnv) wrappers.set(v.name, await ffmpegWrapper(dir, v));
    }
    for (let r = 0; r < ROUNDS; r++) {
      const order = variants.map((_, i) => variants[(i + r) % variants.length]);
      const res = await round(order, wrappers, redis, cam.url);
      all.push(...res);
      console.error(`round ${r + 1}/${ROUNDS} done`);
    }
  } finally {
    await cam.stop();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const rows: BenchRow[] = [];
  const raw: Record<string, unknown>[] = [];
  for (const v of variants) {
    const rs = all.filter((r) => r.variant === v.name);
    const s = rs.flatMap((r) => r.samples);
    const m = (f: (x: Sample) => number) => mean(s.map(f)) / MIB;
    const heap = (k: string) => mean(s.map((x) => x.heap[k]).filter((x) => x !== undefined)) / MIB;
    const fig = {
      variant: v.name,
      denoRss: m((x) => x.deno.rss),
      denoHwm: Math.max(...s.map((x) => x.deno.hwm)) / MIB,
      denoAnon: m((x) => x.deno.anon),
      denoFile: m((x) => x.deno.file),
      denoThreads: mean(s.map((x) => x.deno.threads)),
      heapUsed: heap("heap_used_bytes"),
      heapTotal: heap("heap_total_bytes"),
      external: heap("external_memory_bytes"),
      ffRss: m((x) => x.ffmpeg.rss),
      ffHwm: Math.max(...s.map((x) => x.ffmpeg.hwm)) / MIB,
      ffAnon: m((x) => x.ffmpeg.anon),
      ffFile: m((x) => x.ffmpeg.file),
      ffThreads: mean(s.map((x) => x.ffmpeg.threads)),
      denoMs: median(rs.map((r) => r.denoMsPerFrame)),
      ffMs: median(rs.map((r) => r.ffmpegMsPerFrame)),
      denoMsRounds: rs.map((r) => Number(r.denoMsPerFrame.toFixed(2))),
      ffMsRounds: rs.map((r) => Number(r.ffmpegMsPerFrame.toFixed(2))),
      fps: mean(rs.map((r) => r.frames / r.elapsedS)),
      latMedian: median(rs.flatMap((r) => r.latencyMs)),
      latP95: pct(rs.flatMap((r) => r.latencyMs), 0.95),
    };
    raw.push(fig);
    const b = `rtsp-memory ${FPS} fps: ${v.name}`;
    const note = `${v.about}; ${fig.fps.toFixed(1)} frames/s`;
    rows.push(
      {
        bench: b,
        metric: "node + ffmpeg RSS (mean)",
        value: fig.denoRss + fig.ffRss,
        unit: "MiB",
        note:
          `Deno ${fig.denoRss.toFixed(1)} (anon ${fig.denoAnon.toFixed(1)}, file ${
            fig.denoFile.toFixed(1)
          }, ` +
          `peak ${fig.denoHwm.toFixed(1)}, ${fig.denoThreads.toFixed(0)} threads; V8 heap ${
            fig.heapUsed.toFixed(1)
          } ` +
          `used / ${fig.heapTotal.toFixed(1)}, external ${fig.external.toFixed(1)}) + ffmpeg ${
            fig.ffRss.toFixed(1)
          } ` +
          `(anon ${fig.ffAnon.toFixed(1)}, file ${fig.ffFile.toFixed(1)}, peak ${fig.ffHwm.toFixed(1)}, ` +
          `${fig.ffThreads.toFixed(0)} threads); ${note}`,
      },
      {
        bench: b,
        metric: "CPU per frame, node + ffmpeg (median of rounds)",
        value: fig.denoMs + fig.ffMs,
        unit: "ms",
        note:
          `Deno ${fig.denoMs.toFixed(2)} (${fig.denoMsRounds.join(", ")}) + ffmpeg ${fig.ffMs.toFixed(2)} ` +
          `(${fig.ffMsRounds.join(", ")})`,
      },
      {
        bench: b,
        metric: "capture → bus latency, median",
        value: fig.latMedian,
        unit: "ms",
        note: `p95 ${fig.latP95.toFixed(1)} ms`,
      },
    );
  }
  console.error(JSON.stringify(raw, null, 1));
  const note =
    `${ROUNDS} rounds, ${WARM_S} s warm-up, ${WINDOW_S} s window; all variants at once on one camera`;
  return rows.map((r) => ({ ...r, note: r.note ? `${r.note}; ${note}` : note }));
}
