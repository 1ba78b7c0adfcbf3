/**
 * Source benchmark (issue 3): CPU seconds per frame of the RTSP node (the Deno process and its ffmpeg) ÷ a bare
 * ffmpeg doing the same decode and JPEG encoding of the same stream to /dev/null, at 1280×960. Both read the same
 * real RTSP stream (the Mcity frames served by GStreamer) for the same time, one after the other. Goal ≤ 1.15.
 *
 * @example
 * ```sh
 * deno task bench source
 * ```
 * @module
 */

import { startRtspServer } from "../test/helpers/rtsp_server.ts";
import { startRedis } from "../test/helpers/redis_server.ts";
import { startNode } from "../test/helpers/process.ts";
import { permissionFlags } from "../src/launcher/permissions.ts";
import { buildFfmpegArgs } from "../src/media/capture_ffmpeg.ts";
import { treeCpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the source benchmark for `seconds` per contender. */
export async function sourceBench(seconds = 20): Promise<BenchRow[]> {
  const cam = await startRtspServer({ source: "mcity", path: "/bench", protocols: "tcp" });
  const redis = await startRedis();
  try {
    // Our node: frames published on Redis (no subscriber needed: PUBLISH costs the same).
    const node = startNode(
      "nodes/rtsp.ts",
      [
        "-n",
        "bench_rtsp",
        "-pt",
        "bench",
        "-sn",
        "cam",
        "-u",
        cam.url,
        "--frame-log-every",
        "0",
        "--metrics-port",
        "19464",
      ],
      redis.env,
      permissionFlags("rtsp"),
    );
    await node.waitForLine(/streaming 1280x960/, 30_000);
    await sleep(3000); // past the connection burst
    const metric = async () => {
      const text = await fetch("http://127.0.0.1:19464/metrics").then((r) => r.text());
      return Number(/msight_frames_published_total (\d+)/.exec(text)?.[1] ?? 0);
    };
    const cpu0 = treeCpuSeconds(node.child.pid), f0 = await metric();
    await sleep(seconds * 1000);
    const cpu1 = treeCpuSeconds(node.child.pid), f1 = await metric();
    node.kill("SIGTERM");
    await node.exit;
    const nodeCpuPerFrame = (cpu1 - cpu0) / (f1 - f0);

    // Bare ffmpeg: the node's own ffmpeg command line (same input options, decode flags and JPEG settings), less
    // only the showinfo filter the node reads timestamps from, writing to /dev/null.
    const args = buildFfmpegArgs({
      url: cam.url,
      transport: "tcp",
      timeoutS: 5,
      format: "jpeg",
      jpegQuality: 50,
    })
      .map((a) => a.replace("showinfo=checksum=0,", ""))
      .map((a) => (a === "pipe:1" ? "/dev/null" : a));
    const ff = new Deno.Command("ffmpeg", {
      args: ["-progress", "pipe:2", "-y", ...args],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let frames = 0;
    const progress = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of ff.stderr) {
        for (const m of dec.decode(chunk).matchAll(/^frame=(\d+)$/gm)) frames = Number(m[1]);
      }
    })();
    while (frames === 0) await sleep(100);
    await sleep(3000);
    const fc0 = treeCpuSeconds(ff.pid), ff0 = frames;
    await sleep(seconds * 1000);
    const fc1 = treeCpuSeconds(ff.pid), ff1 = frames;
    ff.kill("SIGKILL");
    await ff.status;
    await progress.catch(() => {});
    const bareCpuPerFrame = (fc1 - fc0) / (ff1 - ff0);

    const ratio = nodeCpuPerFrame / bareCpuPerFrame;
    return [
      {
        bench: "source",
        metric: "node + ffmpeg CPU ms/frame (1280×960 JPEG q50)",
        value: nodeCpuPerFrame * 1000,
        unit: "ms",
        note: `${f1 - f0} frames`,
      },
      {
        bench: "source",
        metric: "bare ffmpeg CPU ms/frame (the node's ffmpeg arguments, less showinfo)",
        value: bareCpuPerFrame * 1000,
        unit: "ms",
        note: `${ff1 - ff0} frames`,
      },
      {
        bench: "source",
        metric: "ratio node ÷ bare ffmpeg",
        value: ratio,
        unit: "×",
        goal: "≤ 1.15",
        pass: ratio <= 1.15,
      },
    ];
  } finally {
    await redis.stop();
    await cam.stop();
  }
}
