/**
 * Aggregator benchmarks (issue 4), each against a baseline in the same run:
 * (a) CPU seconds per output frame of the aggregator (Deno + its ffmpeg encoders) ÷ a bare ffmpeg encoding the same
 *     JPEGs with the same settings; goal ≤ 1.15.
 * (b) peak RSS of the aggregator at `--buffer-size 1000` ÷ at `100`, fed 1000 frames; goal ≤ 1.2. The node runs with
 *     its defaults, so each segment goes to pub/sub and to the durable stream (`--stream-maxlen 100`).
 * (c) time from the last frame of a 100-frame 1280×960 segment (frames sent at the camera's real 10 fps) to its
 *     VideoData on the bus; goal ≤ 300 ms.
 * (d) the ffmpeg.wasm backend's encode time ÷ the system ffmpeg's, in process, for the same 100 frames.
 *
 * @example
 * ```sh
 * deno task bench aggregator
 * ```
 * @module
 */

import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis, type TestRedis } from "../test/helpers/redis_server.ts";
import { startNode } from "../test/helpers/process.ts";
import { encodeMessage } from "../src/bus/wire.ts";
import { IMAGE_DATA_TYPE } from "../src/bus/message.ts";
import { Snowflake } from "../src/bus/snowflake.ts";
import { permissionFlags, runtimeFlags } from "../src/launcher/permissions.ts";
import { SegmentBuilder } from "../src/aggregate/segment_builder.ts";
import { normalizeConfig } from "../src/encode/config.ts";
import type { EncoderKind } from "../src/encode/types.ts";
import { ffmpegArgs } from "../src/encode/ffmpeg_encoder.ts";
import { peakRssBytes, treeCpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const FRAMES = new URL("../test/fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
const ids = new Snowflake(901);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function loadJpegs(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < 170; i++) out.push(await Deno.readFile(`${FRAMES}${String(i).padStart(4, "0")}.jpg`));
  return out;
}

function frameMessage(jpeg: Uint8Array, t: number): Uint8Array {
  return encodeMessage({
    dataType: IMAGE_DATA_TYPE,
    sensorName: "cam",
    captureTimestamp: t,
    creationTimestamp: t,
    frameId: ids.next(),
    deviceName: "bench",
    image: jpeg,
    isEncoded: true,
    detectionResults: null,
    size: [960, 1280, 3],
  });
}

interface Run {
  redis: TestRedis;
  pub: Redis;
  received: { at: number; bytes: number }[];
  node: ReturnType<typeof startNode>;
  close(): Promise<void>;
}

async function startAggregator(bufferSize: number): Promise<Run> {
  const redis = await startRedis();
  const pub = new Redis({ host: "127.0.0.1", port: redis.port });
  const sub = new Redis({ host: "127.0.0.1", port: redis.port });
  const received: { at: number; bytes: number }[] = [];
  sub.on(
    "messageBuffer",
    (_c: Buffer, m: Buffer) => received.push({ at: performance.now(), bytes: m.length }),
  );
  await sub.subscribe("video");
  const node = startNode(
    "nodes/aggregator.ts",
    [
      "-n",
      "bench-agg",
      "-st",
      "frames",
      "-pt",
      "video",
      "--fps",
      "10",
      "--buffer-size",
      String(bufferSize),
      "--overlap-size",
      "0",
      "--max-idle",
      "600",
    ],
    redis.env,
    // The Deno flags the launchers give the aggregator (bin/msight-launch, up), then its permissions.
    [...runtimeFlags("aggregator"), ...permissionFlags("aggregator")],
  );
  await node.waitForLine(/aggregating frames/, 30_000);
  return {
    redis,
    pub,
    received,
    node,
    async close() {
      node.kill("SIGKILL");
      await node.exit;
      pub.disconnect();
      sub.disconnect();
      await redis.stop();
    },
  };
}

/** Calls `send(i)` n times at `fps`, like a camera (a burst would overflow Redis' pub/sub output buffer). */
async function paced(n: number, fps: number, send: (i: number) => Promise<unknown>): Promise<void> {
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / fps;
    if (performance.now() < due) await sleep(due - performance.now());
    await send(i);
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("benchmark timed out");
    await sleep(20);
  }
}

/** The aggregator's exact encoder arguments, writing to /dev/null: what a bare ffmpeg runs for the baseline. */
function bareArgs(): string[] {
  return ffmpegArgs(
    normalizeConfig({ codec: "libx264", width: 1280, height: 960, framerate: 10 }),
    "libx264",
    "jpeg",
  ).map((a) => (a === "pipe:1" ? "/dev/null" : a));
}

/**
 * A bare ffmpeg fed JPEGs on stdin; `done` gives its CPU seconds once stdin is closed and it has finished (bash
 * reaps ffmpeg, so its CPU shows in bash's cutime/cstime).
 */
function startBareFfmpeg(): { write(jpeg: Uint8Array): Promise<void>; done(): Promise<number> } {
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const script = `ffmpeg ${bareArgs().map(quote).join(" ")} -y; cat /proc/$$/stat`;
  const ff = new Deno.Command("bash", {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  })
    .spawn();
  const w = ff.stdin.getWriter();
  return {
    write: (jpeg) => w.write(jpeg),
    async done() {
      await w.close();
      const stat = new TextDecoder().decode((await ff.output()).stdout);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(f[13]) + Number(f[14])) / 100;
    },
  };
}

/**
 * One round: the aggregator node (via Redis) and a bare ffmpeg (via stdin) get the same `n` JPEGs at the same
 * moments, 25 per second like a camera, side by side, so the machine's changing load falls on both alike. CPU
 * seconds of each: the aggregator's process tree (Deno and its per-segment encoders), the bare ffmpeg's.
 */
async function sideBySideCpu(jpegs: Uint8Array[], n: number): Promise<{ ours: number; bare: number }> {
  const run = await startAggregator(100);
  try {
    const bare = startBareFfmpeg();
    const before = treeCpuSeconds(run.node.child.pid);
    const t0 = 1769272125;
    await paced(n, 25, async (i) => {
      const jpeg = jpegs[i % jpegs.length];
      await Promise.all([
        run.pub.publish("frames", Buffer.from(frameMessage(jpeg, t0 + i * 0.1))),
        bare.write(jpeg),
      ]);
    });
    const bareCpu = bare.done();
    await waitUntil(() => run.received.length >= n / 100, 120_000);
    return { ours: treeCpuSeconds(run.node.child.pid) - before, bare: await bareCpu };
  } finally {
    await run.close();
  }
}

/** The bare ffmpeg alone, fed the same `n` JPEGs as fast as it reads them: CPU seconds. */
async function bareBatchCpu(jpegs: Uint8Array[], n: number): Promise<number> {
  const bare = startBareFfmpeg();
  for (let i = 0; i < n; i++) await bare.write(jpegs[i % jpegs.length]);
  return await bare.done();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** (a) CPU per frame, aggregator vs bare ffmpeg, side by side over five rounds (the machine is noisy); medians. */
async function cpuPerFrame(jpegs: Uint8Array[]): Promise<BenchRow[]> {
  const n = 300, rounds = 5;
  const ours: number[] = [], bare: number[] = [], ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const { ours: a, bare: b } = await sideBySideCpu(jpegs, n);
    ours.push(a / n), bare.push(b / n), ratios.push(a / b);
  }
  const batch = (await bareBatchCpu(jpegs, n)) / n;
  const ratio = median(ratios);
  const ms = (xs: number[]) => xs.map((x) => (x * 1000).toFixed(1)).join(", ");
  return [
    {
      bench: "aggregator",
      metric: "(a) aggregator CPU ms/frame (Deno + ffmpeg, 1280×960 JPEG → libx264 superfast), median",
      value: median(ours) * 1000,
      unit: "ms",
      note: `${n} frames at 25 fps × ${rounds} rounds: ${ms(ours)}`,
    },
    {
      bench: "aggregator",
      metric:
        "(a) bare ffmpeg CPU ms/frame (the aggregator's encoder arguments, same JPEGs, same moments), median",
      value: median(bare) * 1000,
      unit: "ms",
      note: `side by side with ours: ${ms(bare)}`,
    },
    {
      bench: "aggregator",
      metric: "(a) ratio aggregator ÷ bare ffmpeg, median of rounds",
      value: ratio,
      unit: "×",
      goal: "≤ 1.15",
      pass: ratio <= 1.15,
      note: `rounds: ${ratios.map((x) => x.toFixed(2)).join(", ")}`,
    },
    {
      bench: "aggregator",
      metric: "(a) bare ffmpeg CPU ms/frame fed as fast as it reads (not paced like a camera), one run",
      value: batch * 1000,
      unit: "ms",
      note: `aggregator's median ÷ it: ${(median(ours) / batch).toFixed(2)}`,
    },
  ];
}

/** (b) peak RSS at buffer 1000 vs 100. */
export async function rssRatio(jpegs: Uint8Array[]): Promise<BenchRow[]> {
  const peak: Record<number, number> = {};
  let segmentBytes = 0;
  for (const size of [100, 1000]) {
    const run = await startAggregator(size);
    try {
      const t0 = 1769300000;
      await paced(
        1000,
        25,
        (i) => run.pub.publish("frames", Buffer.from(frameMessage(jpegs[i % jpegs.length], t0 + i * 0.1))),
      );
      // Every frame falls on its own 1/10 s slot, so the segments fill up and are published without a flush.
      // Completion is read from the node's log: a 1000-frame 1280×960 segment (~30 MB) can exceed Redis' default
      // pub/sub output limit for subscribers (32 MB), which would cut our subscriber off.
      const published = () => run.node.stderr.filter((l) => / :: published segment /.test(l)).length;
      await waitUntil(() => published() >= 1000 / size, 120_000);
      await sleep(1000);
      // VmHWM, the kernel's own high-water mark, read while the node still runs: the last segment's peak (its
      // muxing and publishing) comes just before, and a node that has exited has no /proc entry to read.
      peak[size] = peakRssBytes(run.node.child.pid);
      if (size === 1000) {
        const line = run.node.stderr.find((l) => / :: published segment /.test(l)) ?? "";
        segmentBytes = Number(/ (\d+) bytes,/.exec(line)?.[1] ?? 0);
      }
    } finally {
      await run.close();
    }
  }
  const ratio = peak[1000] / peak[100];
  return [
    {
      bench: "aggregator",
      metric: "(b) peak RSS of the Deno process, --buffer-size 100 (1000 frames at 25 fps; pub/sub + stream)",
      value: peak[100] / 2 ** 20,
      unit: "MiB",
    },
    {
      bench: "aggregator",
      metric: "(b) peak RSS of the Deno process, --buffer-size 1000 (same frames)",
      value: peak[1000] / 2 ** 20,
      unit: "MiB",
      note: `its segment: ${(segmentBytes / 2 ** 20).toFixed(1)} MiB`,
    },
    {
      bench: "aggregator",
      metric: "(b) ratio 1000 ÷ 100",
      value: ratio,
      unit: "×",
      goal: "≤ 1.2",
      pass: ratio <= 1.2,
    },
  ];
}

/** (c) last frame → VideoData latency, frames at the camera's real 10 fps. */
async function latency(jpegs: Uint8Array[]): Promise<BenchRow[]> {
  const run = await startAggregator(100);
  const samples: number[] = [];
  try {
    const t0 = Date.now() / 1000;
    for (let seg = 0; seg < 2; seg++) {
      let lastSent = 0;
      const start = performance.now();
      for (let i = 0; i < 100; i++) {
        const k = seg * 100 + i;
        const due = start + i * 100;
        if (performance.now() < due) await sleep(due - performance.now());
        await run.pub.publish("frames", Buffer.from(frameMessage(jpegs[k % jpegs.length], t0 + k * 0.1)));
        lastSent = performance.now();
      }
      await waitUntil(() => run.received.length > seg, 30_000);
      samples.push(run.received[seg].at - lastSent);
    }
  } finally {
    await run.close();
  }
  const worst = Math.max(...samples);
  return [{
    bench: "aggregator",
    metric: "(c) last frame of a 100-frame 1280×960 segment → VideoData on the bus",
    value: worst,
    unit: "ms",
    goal: "≤ 300 ms",
    pass: worst <= 300,
    note: `worst of ${samples.length}: ${samples.map((s) => s.toFixed(0)).join(", ")} ms`,
  }];
}

/** (d) ffmpeg.wasm vs system ffmpeg, in process, 100 frames. */
async function wasmSpeed(jpegs: Uint8Array[]): Promise<BenchRow[]> {
  const time = async (kind: EncoderKind) => {
    const t = performance.now();
    const b = new SegmentBuilder({
      kind,
      config: { codec: "libx264", width: 1280, height: 960, framerate: 10 },
    });
    for (let i = 0; i < 100; i++) {
      b.add({
        sensor: "c",
        frameId: BigInt(i + 1),
        captureTs: 1000 + i * 0.1,
        width: 1280,
        height: 960,
        format: "jpeg",
        data: jpegs[i],
      });
    }
    await b.finish();
    return (performance.now() - t) / 1000;
  };
  const sys = await time("ffmpeg");
  const wasm = await time("wasm");
  return [
    { bench: "aggregator", metric: "(d) system ffmpeg, 100 frames 1280×960 (wall)", value: sys, unit: "s" },
    { bench: "aggregator", metric: "(d) ffmpeg.wasm, same frames (wall)", value: wasm, unit: "s" },
    {
      bench: "aggregator",
      metric: "(d) ratio wasm ÷ system ffmpeg",
      value: wasm / sys,
      unit: "×",
      note: "wasm is single-threaded, in process",
    },
  ];
}

/** Runs (a)-(d). */
export async function aggregatorBench(): Promise<BenchRow[]> {
  const jpegs = await loadJpegs();
  return [
    ...await cpuPerFrame(jpegs),
    ...await rssRatio(jpegs),
    ...await latency(jpegs),
    ...await wasmSpeed(jpegs),
  ];
}
