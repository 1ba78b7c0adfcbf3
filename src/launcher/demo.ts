/**
 * `deno task demo` (`./edge demo`): the tutorial pipeline on embedded defaults, with nothing configured. It serves
 * a demo camera over real RTSP (the real Mcity traffic-camera frames, looped; or `--video FILE`), then runs a
 * built-in pipeline with {@linkcode PipelineRunner}: a private Redis on a free loopback port and the tutorial's
 * three nodes, each in its own process with its own permissions:
 *
 * ```
 * rtsp → rtsp_topic → image-to-video aggregator → aggregated_video → video local dumper → ./received_videos
 * ```
 *
 * and the web console on http://127.0.0.1:8080/ (`--web-port`) showing them, their camera and their recordings.
 * Ctrl-C (or SIGTERM) stops the camera side first, so the aggregator flushes its partial segment and the dumper
 * writes it, then Redis and the camera. `--duration N` stops by itself after N seconds.
 *
 * @example
 * ```ts
 * import { runDemo } from "./demo.ts";
 * import { DEMO_FLAGS } from "../node/demo_flags.ts";
 * import { parseFlags } from "../runtime/flags.ts";
 * await runDemo(parseFlags(DEMO_FLAGS, ["--duration", "30"], "demo", {}, "the demo"));
 * ```
 * @module
 */

import type { DemoFlags } from "../node/demo_flags.ts";
import { delay } from "../runtime/async.ts";
import { killAllChildren } from "../runtime/children.ts";
import { onShutdownSignals, signalExitCode } from "../runtime/signals.ts";
import { FatalError, UsageError } from "../runtime/errors.ts";
import { freePort } from "../runtime/net.ts";
import { parsePipeline, type Pipeline } from "./pipeline_config.ts";
import { PipelineRunner } from "./pipeline_runner.ts";
import { Supervisor } from "./supervisor.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

const say = (line: string) => console.log(`demo         | ${line}`);

async function waitForPort(port: number, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      // Not listening yet: try again until the deadline, which reports it.
      await delay(100);
    }
  }
  throw new FatalError(`${what} did not start listening on 127.0.0.1:${port} within ${timeoutMs / 1000} s`);
}

async function requireBinary(cmd: string, args: string[], hint: string): Promise<void> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    if (!r.success) throw new Error("failed");
  } catch {
    throw new FatalError(`${cmd} is not usable: ${hint}`);
  }
}

/**
 * The built-in pipeline: the tutorial's three commands (but for the camera URL) on a private Redis, and the web
 * console browsing the dumper's directory with the three nodes' /metrics.
 *
 * @example
 * ```ts
 * const p = demoPipeline({ cameraUrl: "rtsp://127.0.0.1:8554/live.stream", fps: 10, bufferSize: 100,
 *   saveDir: "./received_videos", device: "demo-edge", webPort: 8080,
 *   metricsPorts: { rtsp: 9101, aggregator: 9102, dumper: 9103 } });
 * ```
 */
export function demoPipeline(
  o: {
    cameraUrl: string;
    fps: number;
    bufferSize: number;
    saveDir: string;
    device: string;
    /** The console's port, and the /metrics ports of the three nodes whose figures it shows. */
    webPort: number;
    metricsPorts: { rtsp: number; aggregator: number; dumper: number };
  },
): Pipeline {
  // `$${` is a literal `${` in a pipeline's values: a path or URL is taken as it is.
  const lit = (s: string) => s.replaceAll("${", "$${");
  const spec = {
    redis: { start: true },
    device: lit(o.device),
    nodes: [
      {
        name: "rtsp",
        node: "rtsp",
        flags: {
          name: "rtsp_node",
          "publish-topic": "rtsp_topic",
          "sensor-name": "rtsp_sensor",
          url: lit(o.cameraUrl),
          gap: 0,
          "rtsp-transport": "tcp",
          "frame-log-every": 50,
          "metrics-port": o.metricsPorts.rtsp,
        },
      },
      {
        name: "aggregator",
        node: "aggregator",
        flags: {
          name: "image-aggregator",
          "subscribe-topic": "rtsp_topic",
          "publish-topic": "aggregated_video",
          fps: o.fps,
          "buffer-size": o.bufferSize,
          "overlap-size": 0,
          "metrics-port": o.metricsPorts.aggregator,
        },
      },
      {
        name: "dumper",
        node: "dumper",
        flags: {
          name: "video_dumper",
          "subscribe-topic": "aggregated_video",
          "save-dir": lit(o.saveDir),
          "metrics-port": o.metricsPorts.dumper,
        },
      },
      {
        name: "web",
        node: "web",
        flags: {
          name: "console",
          port: o.webPort,
          "save-dir": lit(o.saveDir),
          "heartbeat-update-interval": 5,
        },
      },
    ],
  };
  // JSON is YAML: the pipeline goes through the same checks as a file's.
  return parsePipeline(JSON.stringify(spec), "the demo pipeline", (k) => Deno.env.get(k));
}

/** Runs the demo until SIGINT/SIGTERM or `--duration`; see the module doc. */
export async function runDemo(f: DemoFlags): Promise<number> {
  if (f.video) {
    try {
      await Deno.stat(f.video);
    } catch {
      throw new UsageError(`--video ${f.video}: no such file`);
    }
  }
  await requireBinary(
    "redis-server",
    ["--version"],
    "install it with ./edge setup (apt-get install redis-server)",
  );
  await requireBinary("ffmpeg", ["-version"], "install it with ./edge setup (apt-get install ffmpeg)");
  await requireBinary(
    "/usr/bin/python3",
    ["-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
    "install the GStreamer RTSP server with ./edge setup",
  );

  const rtspPort = freePort();
  const cameraUrl = `rtsp://127.0.0.1:${rtspPort}/live.stream`;
  const log = (line: string) => {
    if (!f.quiet || / :: (saved|.*WARNING|.*ERROR)/.test(line) || /^demo/.test(line)) console.log(line);
  };
  const pipeline = demoPipeline({
    cameraUrl,
    fps: f.fps,
    bufferSize: f.bufferSize,
    saveDir: f.saveDir,
    device: Deno.env.get("MSIGHT_EDGE_DEVICE_NAME") ?? "demo-edge",
    webPort: f.webPort,
    metricsPorts: { rtsp: freePort(), aggregator: freePort(), dumper: freePort() },
  });

  // The camera is not a node of the pipeline: it runs beside it, up before the rtsp node and down after it.
  const camera = new Supervisor({ log });
  say(
    `serving the demo camera at ${cameraUrl} (${
      f.video ? f.video : "real Mcity traffic-camera frames, looped"
    })`,
  );
  camera.add({
    name: "camera",
    role: "service",
    detached: true,
    cmd: "/usr/bin/python3",
    args: [
      `${ROOT}tools/rtsp_demo_server.py`,
      "--port",
      String(rtspPort),
      ...(f.video ? ["--source", "file", "--file", f.video] : ["--source", "mcity"]),
    ],
  });
  let runner: PipelineRunner;
  try {
    await waitForPort(rtspPort, "the demo RTSP server");
    runner = await PipelineRunner.start(pipeline, { log, cwd: ROOT, label: "demo" });
  } catch (err) {
    await camera.stop(5);
    throw err;
  }
  say(
    `pipeline running: segments of ${f.bufferSize} frames at ${f.fps} fps go to ${f.saveDir}. Ctrl-C to stop.`,
  );
  say(`web console: http://127.0.0.1:${f.webPort}/`);

  const stop = Promise.withResolvers<string>();
  // A second Ctrl-C while stopping (a second after the first: src/runtime/signals.ts) exits at once.
  const signals = onShutdownSignals({
    onStop: (s) => stop.resolve(s),
    onRepeat(s) {
      killAllChildren("SIGKILL");
      Deno.exit(signalExitCode(s));
    },
  });
  const timer = f.duration > 0
    ? setTimeout(() => stop.resolve(`--duration ${f.duration}`), f.duration * 1000)
    : undefined;
  const why = await stop.promise;
  clearTimeout(timer);
  say(`stopping (${why}): the camera side first, so the last partial segment is flushed and saved`);
  await runner.stop(why);
  await camera.stop(25);
  signals.dispose();
  say(`stopped; segments are in ${f.saveDir}`);
  return 0;
}
