/**
 * `deno task bench msight`: our nodes and MSight_Core 2.0.2's Python nodes (test/peers/msight_core) side by side,
 * in one run, on the same input at the same time: CPU from /proc (each process tree), frames counted on the bus,
 * peak RSS (VmHWM summed over the tree).
 *
 * - RTSP node, at 10 and 25 fps (the Mcity frames, 1280×960): CPU ms per published frame and peak RSS.
 *   Goals: ours ≤ 0.25× MSight's CPU and ≤ 0.7× its RSS. Beside them, a bare ffmpeg only decoding the same stream:
 *   the CPU floor of any node that decodes on the CPU, to read the 0.25× goal against.
 * - Aggregator at buffer 100, both fed the same ImageData at 10 fps, each with the tutorial's command (no
 *   `--codec`: ours libx264, MSight libx265): CPU ms per output frame, peak RSS, and the time from a segment's last
 *   frame to its VideoData. Goal: ours ≤ 0.5× MSight's CPU per frame. (Buffer 1000 is not run here: MSight would
 *   hold ~3.7 GB of decoded 1280×960 frames and each window would last minutes.)
 *
 * Windows: `MSIGHT_BENCH_WARM_S` (default 30) of warm-up, then `MSIGHT_BENCH_WINDOW_S` (default 60) measured.
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { startRedis } from "../test/helpers/redis_server.ts";
import { startRtspServer } from "../test/helpers/rtsp_server.ts";
import { type NodeProcess, startNode, startProcess } from "../test/helpers/process.ts";
import { MSIGHT_PYTHONPATH, MSIGHT_ROOT, PYTHON } from "../test/peers/msight.ts";
import { decodeMessage, encodeMessage } from "../src/bus/wire.ts";
import { IMAGE_DATA_TYPE, VIDEO_DATA_TYPE } from "../src/bus/message.ts";
import { Snowflake } from "../src/bus/snowflake.ts";
import { loadJpegs } from "./aggregator.ts";
import { peakRssBytes, treeCpuSeconds, treePids } from "./proc.ts";
import type { BenchRow } from "./table.ts";
import { permissionFlags, runtimeFlags } from "../src/launcher/permissions.ts";

const WARM_S = Number(Deno.env.get("MSIGHT_BENCH_WARM_S") ?? 30);
const WINDOW_S = Number(Deno.env.get("MSIGHT_BENCH_WINDOW_S") ?? 60);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

const treeRss = (pid: number) => treePids(pid).reduce((s, p) => s + peakRssBytes(p), 0);

/** Counts messages (and, for VideoData, their frames and arrival times) per topic. */
async function counter(port: number, topics: string[]) {
  const sub = new Redis({ host: "127.0.0.1", port });
  const messages = new Map<string, number>(topics.map((t) => [t, 0]));
  const frames = new Map<string, number>(topics.map((t) => [t, 0]));
  const videos: { topic: string; at: number; lastFrameId: bigint }[] = [];
  sub.on("messageBuffer", (ch: Buffer, msg: Buffer) => {
    const topic = ch.toString();
    messages.set(topic, (messages.get(topic) ?? 0) + 1);
    const m = decodeMessage(new Uint8Array(msg));
    if (m.dataType === VIDEO_DATA_TYPE) {
      frames.set(topic, (frames.get(topic) ?? 0) + m.frameIds.length);
      videos.push({ topic, at: Date.now(), lastFrameId: m.frameIds.at(-1)! });
    }
  });
  await sub.subscribe(...topics);
  return { messages, frames, videos, close: () => sub.disconnect() };
}

function msightEnv(port: number): Record<string, string> {
  return {
    MSIGHT_REDIS_MESSAGE_BROKER_HOST: "127.0.0.1",
    MSIGHT_REDIS_MESSAGE_BROKER_PORT: String(port),
    MSIGHT_EDGE_DEVICE_NAME: "bench",
    MSIGHT_LOGGING_LEVEL: "WARNING",
    PYTHONPATH: MSIGHT_PYTHONPATH,
    PYTHONDONTWRITEBYTECODE: "1",
  };
}

function ratioRow(bench: string, metric: string, ours: number, theirs: number, goal: number): BenchRow {
  const value = ours / theirs;
  return { bench, metric, value, unit: "×", goal: `≤ ${goal}`, pass: value <= goal };
}

/** The RTSP node side by side with MSight's at `fps` (one part of {@linkcode msightBench}). */
export async function rtspSideBySide(fps: number): Promise<BenchRow[]> {
  const redis = await startRedis();
  const cam = await startRtspServer({ source: "mcity", fps, path: `/bench${fps}` });
  const procs: NodeProcess[] = [];
  const count = await counter(redis.port, ["ours", "msight"]);
  try {
    // Started as the launchers start it: its V8 flags and permissions.
    const ours = startNode(
      "nodes/rtsp.ts",
      [
        ...["-n", "our_rtsp", "-pt", "ours", "-sn", "cam", "-u", cam.url, "--logging-level", "WARNING"],
      ],
      redis.env,
      [...runtimeFlags("rtsp"), ...permissionFlags("rtsp")],
    );
    procs.push(ours);
    const ms = startProcess(
      PYTHON,
      [
        ...[
          "-u",
          "-m",
          "cli.launch_rtsp",
          "-n",
          "ms_rtsp",
          "-pt",
          "msight",
          "--sensor-name",
          "cam",
          "-u",
          cam.url,
        ],
        ...["--logging-level", "WARNING"],
      ],
      msightEnv(redis.port),
      MSIGHT_ROOT,
    );
    procs.push(ms);
    // The floor of any RTSP node that decodes on the CPU: ffmpeg only decoding the same stream, as ours does
    // (low_delay), with no JPEG and no bus. It decodes the frames our node publishes.
    const floor = startProcess(
      "ffmpeg",
      [
        ...["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-flags", "low_delay", "-i", cam.url],
        ...["-map", "0:v:0", "-f", "null", "-"],
      ],
      {},
    );
    procs.push(floor);
    await sleep(WARM_S * 1000);
    const pids = [ours.child.pid, ms.child.pid, floor.child.pid];
    const c0 = pids.map(treeCpuSeconds);
    const f0 = [count.messages.get("ours")!, count.messages.get("msight")!];
    await sleep(WINDOW_S * 1000);
    const c1 = pids.map(treeCpuSeconds);
    const f1 = [count.messages.get("ours")!, count.messages.get("msight")!];
    const rss = [treeRss(ours.child.pid), treeRss(ms.child.pid)];
    const perFrame = [0, 1].map((i) => ((c1[i] - c0[i]) * 1000) / Math.max(1, f1[i] - f0[i]));
    const floorPerFrame = ((c1[2] - c0[2]) * 1000) / Math.max(1, f1[0] - f0[0]);
    const b = `msight rtsp ${fps} fps`;
    const fpsOf = (i: number) => ((f1[i] - f0[i]) / WINDOW_S).toFixed(1);
    return [
      {
        bench: b,
        metric: "ours: CPU per frame",
        value: perFrame[0],
        unit: "ms",
        note: `${fpsOf(0)} frames/s`,
      },
      {
        bench: b,
        metric: "MSight: CPU per frame",
        value: perFrame[1],
        unit: "ms",
        note: `${fpsOf(1)} frames/s`,
      },
      ratioRow(b, "CPU per frame, ours / MSight", perFrame[0], perFrame[1], 0.25),
      {
        bench: b,
        metric: "bare ffmpeg decoding the same stream (no JPEG, no bus): CPU per frame",
        value: floorPerFrame,
        unit: "ms",
        note: "the floor of any RTSP node that decodes on the CPU",
      },
      {
        bench: b,
        metric: "CPU per frame, decoding alone / MSight",
        value: floorPerFrame / perFrame[1],
        unit: "×",
        note: "what is left under the ours / MSight goal for the JPEG encoding and the node",
      },
      { bench: b, metric: "ours: peak RSS", value: rss[0] / MB, unit: "MB" },
      { bench: b, metric: "MSight: peak RSS", value: rss[1] / MB, unit: "MB" },
      ratioRow(b, "peak RSS, ours / MSight", rss[0], rss[1], 0.7),
    ];
  } finally {
    count.close();
    for (const p of procs) await p.stop();
    await cam.stop();
    await redis.stop();
  }
}

async function aggregatorSideBySide(buffer: number): Promise<BenchRow[]> {
  const redis = await startRedis();
  const jpegs = await loadJpegs();
  const procs: NodeProcess[] = [];
  const pub = new Redis({ host: "127.0.0.1", port: redis.port });
  const count = await counter(redis.port, ["v_ours", "v_msight"]);
  const sentAt = new Map<bigint, number>();
  const ids = new Snowflake(77);
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    const common = ["--fps", "10", "--buffer-size", String(buffer), "--overlap-size", "0"];
    const ours = startNode(
      "nodes/aggregator.ts",
      ["-n", "our_agg", "-st", "img", "-pt", "v_ours", ...common],
      {
        ...redis.env,
        MSIGHT_LOGGING_LEVEL: "WARNING",
      },
      ["-A"],
    );
    procs.push(ours);
    const ms = startProcess(
      PYTHON,
      [
        ...[
          "-u",
          "-m",
          "cli.launch_image_to_video_aggregator",
          "-n",
          "ms_agg",
          "-st",
          "img",
          "-pt",
          "v_msight",
        ],
        ...common,
        ...["--logging-level", "WARNING"],
      ],
      msightEnv(redis.port),
      MSIGHT_ROOT,
    );
    procs.push(ms);
    await sleep(5000); // both subscribed (Python's imports take a few seconds)
    let i = 0;
    timer = setInterval(() => {
      const id = ids.next();
      const t = Date.now() / 1000;
      sentAt.set(id, Date.now());
      void pub.publish(
        "img",
        Buffer.from(encodeMessage({
          dataType: IMAGE_DATA_TYPE,
          sensorName: "cam",
          captureTimestamp: t,
          creationTimestamp: t,
          frameId: id,
          deviceName: "bench",
          image: jpegs[i++ % jpegs.length],
          isEncoded: true,
          detectionResults: null,
          size: [960, 1280, 3],
        })),
      );
    }, 100);
    await sleep(WARM_S * 1000);
    const c0 = [treeCpuSeconds(ours.child.pid), treeCpuSeconds(ms.child.pid)];
    const f0 = [count.frames.get("v_ours")!, count.frames.get("v_msight")!];
    await sleep(WINDOW_S * 1000);
    const c1 = [treeCpuSeconds(ours.child.pid), treeCpuSeconds(ms.child.pid)];
    const f1 = [count.frames.get("v_ours")!, count.frames.get("v_msight")!];
    const rss = [treeRss(ours.child.pid), treeRss(ms.child.pid)];
    const perFrame = [0, 1].map((k) => ((c1[k] - c0[k]) * 1000) / Math.max(1, f1[k] - f0[k]));
    const latency = (topic: string) => {
      const l = count.videos.filter((v) => v.topic === topic && sentAt.has(v.lastFrameId)).map((v) =>
        (v.at - sentAt.get(v.lastFrameId)!) / 1000
      );
      return l.length ? l.reduce((a, b) => a + b, 0) / l.length : NaN;
    };
    const b = `msight aggregator buffer ${buffer}`;
    return [
      {
        bench: b,
        metric: "ours (libx264): CPU per output frame",
        value: perFrame[0],
        unit: "ms",
        note: `${f1[0] - f0[0]} frames in the window`,
      },
      {
        bench: b,
        metric: "MSight (libx265): CPU per output frame",
        value: perFrame[1],
        unit: "ms",
        note: `${f1[1] - f0[1]} frames in the window`,
      },
      ratioRow(b, "CPU per frame, ours / MSight", perFrame[0], perFrame[1], 0.5),
      { bench: b, metric: "ours: peak RSS", value: rss[0] / MB, unit: "MB" },
      { bench: b, metric: "MSight: peak RSS", value: rss[1] / MB, unit: "MB" },
      {
        bench: b,
        metric: "ours: last frame → VideoData",
        value: latency("v_ours"),
        unit: "s",
        note: "after the first 6 s of a sensor, frames are decided as they come",
      },
      { bench: b, metric: "MSight: last frame → VideoData", value: latency("v_msight"), unit: "s" },
    ];
  } finally {
    clearInterval(timer);
    count.close();
    pub.disconnect();
    for (const p of procs) await p.stop();
    await redis.stop();
  }
}

/** The side-by-side benchmark; see the module doc. */
export async function msightBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const fps of [10, 25]) rows.push(...await rtspSideBySide(fps));
  rows.push(...await aggregatorSideBySide(100));
  const note = `${WARM_S} s warm-up, ${WINDOW_S} s window`;
  return rows.map((r) => ({ ...r, note: r.note ? `${r.note}; ${note}` : note }));
}
