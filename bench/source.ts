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
import { DENO, startNode } from "../test/helpers/process.ts";
import { permissionFlags } from "../src/launcher/permissions.ts";
import { buildFfmpegArgs } from "../src/media/capture_ffmpeg.ts";
import { cpuSeconds, treeCpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** CPU seconds per published frame of our node (Deno + its ffmpeg) over `seconds`, after the connection burst. */
async function nodeCpuPerFrame(
  url: string,
  env: Record<string, string>,
  seconds: number,
): Promise<{ cpu: number; deno: number; limitedYuv420: boolean }> {
  // Frames are published on Redis with no subscriber: PUBLISH costs the same.
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
      url,
      "--frame-log-every",
      "0",
      "--metrics-port",
      "19464",
    ],
    env,
    permissionFlags("rtsp"),
  );
  try {
    await node.waitForLine(/streaming 1280x960/, 30_000);
    await sleep(3000); // past the connection burst
    const published = async () => {
      const text = await fetch("http://127.0.0.1:19464/metrics").then((r) => r.text());
      return Number(/msight_frames_published_total (\d+)/.exec(text)?.[1] ?? 0);
    };
    // While ffmpeg runs it is not reaped, so the node's own counters hold the Deno process alone.
    const cpu0 = treeCpuSeconds(node.child.pid), own0 = cpuSeconds(node.child.pid), f0 = await published();
    await sleep(seconds * 1000);
    const cpu1 = treeCpuSeconds(node.child.pid), own1 = cpuSeconds(node.child.pid), f1 = await published();
    // The node converts a full-range camera's colours with the scaler (it logs "camera sends ..."): the baseline
    // must do the same.
    const limitedYuv420 = !node.stderr.some((l) => / camera sends /.test(l));
    return { cpu: (cpu1 - cpu0) / (f1 - f0), deno: (own1 - own0) / (f1 - f0), limitedYuv420 };
  } finally {
    node.kill("SIGTERM");
    await node.exit;
  }
}

/**
 * The same work by a bare ffmpeg: the node's own ffmpeg command line (same input options, decode flags, colour
 * conversion and JPEG settings) less only the showinfo filter the node reads timestamps from, writing to /dev/null.
 */
function exactArgs(url: string, limitedYuv420: boolean): string[] {
  return buildFfmpegArgs({
    url,
    transport: "tcp",
    timeoutS: 5,
    format: "jpeg",
    jpegQuality: 50,
    limitedYuv420,
  })
    .map((a) => a.replace("showinfo=checksum=0,", "").replace(/^showinfo=checksum=0$/, "null"))
    .map((a) => (a === "pipe:1" ? "/dev/null" : a));
}

/** What a user would type for the same JPEGs: ffmpeg's defaults (its scaler converts the colour range). */
function plainArgs(url: string): string[] {
  return ["-rtsp_transport", "tcp", "-i", url, "-an", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "9"]
    .concat(["-f", "image2pipe", "/dev/null"]);
}

async function bareCpuPerFrame(args: string[], seconds: number): Promise<number> {
  const ff = new Deno.Command("ffmpeg", {
    args: ["-progress", "pipe:2", "-y", ...args],
    stdout: "null",
    stderr: "piped",
  })
    .spawn();
  let frames = 0;
  const progress = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of ff.stderr) {
      for (const m of dec.decode(chunk).matchAll(/^frame=(\d+)$/gm)) frames = Number(m[1]);
    }
  })();
  try {
    while (frames === 0) await sleep(100);
    await sleep(3000);
    const c0 = treeCpuSeconds(ff.pid), n0 = frames;
    await sleep(seconds * 1000);
    return (treeCpuSeconds(ff.pid) - c0) / (frames - n0);
  } finally {
    ff.kill("SIGKILL");
    await ff.status;
    await progress.catch(() => {});
  }
}

/** CPU seconds per tick of a Deno process that does nothing but a 50 ms interval (200 ticks, start-up subtracted). */
async function denoTickCpu(): Promise<number> {
  const cpu = "const f = Deno.readTextFileSync('/proc/self/stat').split(') ')[1].split(' '); " +
    "console.log((Number(f[11]) + Number(f[12])) / 100);";
  const run = async (code: string) => {
    const out = await new Deno.Command(DENO, { args: ["eval", code], stdout: "piped" }).output();
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  const ticking = await run(
    `let n = 0; const t = setInterval(() => { if (++n === 200) { clearInterval(t); ${cpu} } }, 50);`,
  );
  const startup = await run(cpu);
  return Math.max(0, ticking - startup) / 200;
}

/** Runs the source benchmark: five rounds (the machine is noisy), ours and the bare ffmpeg alternating, `seconds` each; medians. */
export async function sourceBench(seconds = 20, rounds = 5): Promise<BenchRow[]> {
  const cam = await startRtspServer({ source: "mcity", path: "/bench", protocols: "tcp" });
  const redis = await startRedis();
  try {
    const ours: number[] = [],
      bare: number[] = [],
      ratios: number[] = [],
      plain: number[] = [],
      deno: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const a = await nodeCpuPerFrame(cam.url, redis.env, seconds);
      const b = await bareCpuPerFrame(exactArgs(cam.url, a.limitedYuv420), seconds);
      ours.push(a.cpu), bare.push(b), ratios.push(a.cpu / b), deno.push(a.deno);
      plain.push(await bareCpuPerFrame(plainArgs(cam.url), seconds));
    }
    const ratio = median(ratios);
    const ms = (xs: number[]) => xs.map((x) => (x * 1000).toFixed(1)).join(", ");
    const tick = await denoTickCpu();
    return [
      {
        bench: "source",
        metric: "node + ffmpeg CPU ms/frame (1280×960 JPEG q50), median",
        value: median(ours) * 1000,
        unit: "ms",
        note: `${rounds} rounds of ${seconds} s: ${ms(ours)}`,
      },
      {
        bench: "source",
        metric: "bare ffmpeg CPU ms/frame (the node's ffmpeg arguments, less showinfo), median",
        value: median(bare) * 1000,
        unit: "ms",
        note: `alternated with ours: ${ms(bare)}`,
      },
      {
        bench: "source",
        metric: "ratio node ÷ bare ffmpeg, median of rounds",
        value: ratio,
        unit: "×",
        goal: "≤ 1.15",
        pass: ratio <= 1.15,
        note: `rounds: ${ratios.map((x) => x.toFixed(2)).join(", ")}`,
      },
      {
        bench: "source",
        metric: "bare ffmpeg CPU ms/frame, ffmpeg's own colour conversion (-pix_fmt yuvj420p -q:v 9), median",
        value: median(plain) * 1000,
        unit: "ms",
        note: `the command a user would write; ours ÷ it: ${(median(ours) / median(plain)).toFixed(2)}`,
      },
      {
        bench: "source",
        metric: "of which the Deno process (the node without its ffmpeg) CPU ms/frame, median",
        value: median(deno) * 1000,
        unit: "ms",
        note: `rounds: ${ms(deno)}`,
      },
      {
        bench: "source",
        metric: "one turn of Deno's event loop: CPU ms per tick of an otherwise idle 50 ms interval",
        value: tick * 1000,
        unit: "ms",
        note:
          "a frame costs the node ≥ 4 turns (2 pipe reads for a ~70 KB JPEG, 1 for its showinfo line, 1 write)",
      },
    ];
  } finally {
    await redis.stop();
    await cam.stop();
  }
}
