/**
 * `deno task demo` (`./edge demo`): the tutorial pipeline on embedded defaults, with nothing configured. It starts
 * a private Redis on a free loopback port, a demo camera served over real RTSP (the real Mcity traffic-camera
 * frames, looped; or `--video FILE`), and the tutorial's three nodes, each in its own process with its own
 * permissions:
 *
 * ```
 * rtsp → rtsp_topic → image-to-video aggregator → aggregated_video → video local dumper → ./received_videos
 * ```
 *
 * Ctrl-C (or SIGTERM) stops the camera side first, so the aggregator flushes its partial segment and the dumper
 * writes it, then Redis and the camera. `--duration N` stops by itself after N seconds.
 * @module
 */

import { Supervisor } from "../src/launcher/supervisor.ts";
import { nodeScript, permissionFlags } from "../src/launcher/permissions.ts";
import { FatalError, UsageError } from "../src/runtime/errors.ts";
import { parseFlags } from "../src/runtime/flags.ts";
import { killAllChildren } from "../src/runtime/children.ts";
import { onShutdownSignals, signalExitCode } from "../src/runtime/signals.ts";
import { privateRedisArgs } from "../src/launcher/private_redis.ts";
import { runTool } from "../src/node/run_tool.ts";

const FLAGS = {
  saveDir: {
    long: "save-dir",
    short: "sd",
    type: "string",
    default: "./received_videos",
    help: "where segments are written",
  },
  video: {
    long: "video",
    type: "string",
    help: "serve this video file (looped) instead of the built-in camera frames",
  },
  fps: { long: "fps", type: "number", default: 10, min: 0, minExclusive: true, help: "aggregator --fps" },
  bufferSize: {
    long: "buffer-size",
    type: "int",
    default: 100,
    min: 1,
    help: "aggregator --buffer-size (100 frames at 10 fps: 10 s segments)",
  },
  duration: {
    long: "duration",
    type: "number",
    default: 0,
    min: 0,
    metavar: "SECONDS",
    help: "stop after this long (0: until Ctrl-C)",
  },
  quiet: {
    long: "quiet",
    type: "bool",
    default: false,
    help: "print only the pipeline's own notes and saved segments",
  },
} as const;

const say = (line: string) => console.log(`demo         | ${line}`);

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(port: number, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
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

async function main(): Promise<number> {
  const f = parseFlags(FLAGS, Deno.args, "demo", {}, "Run the tutorial pipeline on embedded defaults.");
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

  const deno = Deno.execPath();
  const root = new URL("../", import.meta.url).pathname;
  const redisPort = freePort();
  const rtspPort = freePort();
  const cameraUrl = `rtsp://127.0.0.1:${rtspPort}/live.stream`;
  const env = {
    REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
    MSIGHT_EDGE_DEVICE_NAME: Deno.env.get("MSIGHT_EDGE_DEVICE_NAME") ?? "demo-edge",
  };
  const sup = new Supervisor({
    log: (line) => {
      if (!f.quiet || / :: (saved|.*WARNING|.*ERROR)/.test(line) || /^demo/.test(line)) console.log(line);
    },
  });

  say(`starting a private Redis on 127.0.0.1:${redisPort}`);
  sup.add({
    name: "redis",
    role: "service",
    detached: true,
    cmd: "redis-server",
    args: privateRedisArgs(redisPort),
  });
  await waitForPort(redisPort, "redis-server");

  say(
    `serving the demo camera at ${cameraUrl} (${
      f.video ? f.video : "real Mcity traffic-camera frames, looped"
    })`,
  );
  sup.add({
    name: "camera",
    role: "service",
    detached: true,
    cmd: "/usr/bin/python3",
    args: [
      `${root}tools/rtsp_demo_server.py`,
      "--port",
      String(rtspPort),
      ...(f.video ? ["--source", "file", "--file", f.video] : ["--source", "mcity"]),
    ],
  });
  await waitForPort(rtspPort, "the demo RTSP server");

  const node = (name: string, script: "rtsp" | "aggregator" | "dumper", args: string[]) =>
    sup.add({
      name,
      cmd: deno,
      cwd: root,
      // Own sessions: Ctrl-C reaches only the demo, which then stops everything in order.
      detached: true,
      env,
      args: [
        "run",
        ...permissionFlags(script, { saveDir: f.saveDir }),
        `${root}${nodeScript(script)}`,
        ...args,
      ],
    });
  // The tutorial's commands, verbatim but for the camera URL.
  node("rtsp", "rtsp", [
    "-n",
    "rtsp_node",
    "-pt",
    "rtsp_topic",
    "--sensor-name",
    "rtsp_sensor",
    "-u",
    cameraUrl,
    "-g",
    "0",
    "--rtsp-transport",
    "tcp",
    "--frame-log-every",
    "50",
  ]);
  node("aggregator", "aggregator", [
    "-n",
    "image-aggregator",
    "-st",
    "rtsp_topic",
    "-pt",
    "aggregated_video",
    "--fps",
    String(f.fps),
    "--buffer-size",
    String(f.bufferSize),
    "--overlap-size",
    "0",
  ]);
  node("dumper", "dumper", ["-n", "video_dumper", "-st", "aggregated_video", "--save-dir", f.saveDir]);
  say(
    `pipeline running: segments of ${f.bufferSize} frames at ${f.fps} fps go to ${f.saveDir}. Ctrl-C to stop.`,
  );

  const stop = Promise.withResolvers<string>();
  // A second Ctrl-C while stopping (a second after the first) exits at once.
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
  await sup.stop(25);
  signals.dispose();
  say(`stopped; segments are in ${f.saveDir}`);
  return 0;
}

if (import.meta.main) await runTool("demo", main);
