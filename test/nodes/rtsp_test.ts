/**
 * The RTSP node as users run it: a real process, a real GStreamer RTSP server, a real Redis.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { connectGuarded } from "../../src/bus/nats/transport.ts";
import { startNats } from "../helpers/nats_server.ts";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { type RtspServer, type RtspServerOptions, startRtspServer } from "../helpers/rtsp_server.ts";
import { type NodeProcess, startNode, stopsCleanly } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { decodeMessage } from "../../src/bus/wire.ts";
import type { ImageData } from "../../src/bus/message.ts";
import { NODES_KEY } from "../../src/bus/registry.ts";

const DENO_PERMS = [
  "--allow-net",
  "--allow-env",
  "--allow-sys=hostname",
  "--allow-read",
  "--allow-run=ffmpeg,ffprobe",
];

/** The frames published on a Redis topic, with the time each arrived. */
interface Sink {
  frames: ImageData[];
  arrivals: number[];
  close(): void;
}

async function collect(port: number, topic: string): Promise<Sink> {
  const sub = new Redis({ host: "127.0.0.1", port });
  const frames: ImageData[] = [];
  const arrivals: number[] = [];
  sub.on("messageBuffer", (_c: Buffer, m: Buffer) => {
    frames.push(decodeMessage(new Uint8Array(m)) as ImageData);
    arrivals.push(Date.now() / 1000);
  });
  await sub.subscribe(topic);
  return { frames, arrivals, close: () => sub.disconnect() };
}

/** What a test body gets from {@linkcode withRtspNode}. */
interface Rig {
  redis: TestRedis;
  cam: RtspServer;
  sink: Sink;
  node: NodeProcess;
}

/**
 * A Redis, a test camera, a subscriber on `topic`, and the RTSP node started with `args(cam.url)`; after `body`,
 * the node gets SIGTERM (and SIGKILL if it is still there), then the rest stops.
 */
async function withRtspNode(
  camera: RtspServerOptions,
  topic: string,
  args: (camUrl: string) => string[],
  body: (rig: Rig) => Promise<void>,
): Promise<void> {
  const redis = await startRedis();
  const cam = await startRtspServer(camera);
  const sink = await collect(redis.port, topic);
  const node = startNode("nodes/rtsp.ts", args(cam.url), redis.env, DENO_PERMS);
  try {
    await body({ redis, cam, sink, node });
  } finally {
    node.kill("SIGTERM");
    await node.exit;
    await node.stop();
    sink.close();
    await cam.stop();
    await redis.stop();
  }
}

/** Frames per second by capture time, first to last frame. */
function captureRate(frames: ImageData[]): number {
  return (frames.length - 1) / (frames.at(-1)!.captureTimestamp - frames[0].captureTimestamp);
}

function assertIdsIncrease(frames: ImageData[]): void {
  for (let i = 1; i < frames.length; i++) {
    assert.ok(frames[i].frameId > frames[i - 1].frameId, "ids increase");
  }
}

/** Status and body of a GET on the node's health server. */
async function httpGet(port: number, path: string): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, text: await r.text() };
}

async function decodesAsJpeg(bytes: Uint8Array): Promise<string> {
  const p = new Deno.Command("ffprobe", {
    args: [
      "-v",
      "error",
      "-show_entries",
      "stream=codec_name,width,height",
      "-of",
      "csv=p=0",
      "-i",
      "pipe:0",
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(bytes);
  await w.close();
  return new TextDecoder().decode((await p.output()).stdout).trim();
}

Deno.test("rtsp node: the tutorial command verbatim publishes the real camera's frames as valid JPEG ImageData", async () => {
  const metricsPort = freePort();
  // The tutorial's line, with our URL; -g 0 on this GPU-less machine must fall back to the CPU with one warning.
  const tutorialArgs = (url: string) => [
    ..."-n rtsp_node -pt rtsp_topic --sensor-name rtsp_sensor -u".split(" "),
    url,
    ..."-g 0 --rtsp-transport tcp --metrics-port".split(" "),
    String(metricsPort),
  ];
  await withRtspNode(
    { source: "mcity", path: "/live.stream" },
    "rtsp_topic",
    tutorialArgs,
    async ({ redis, cam, sink, node }) => {
      await waitFor(() => sink.frames.length >= 40, 30_000, "40 frames");
      const f = sink.frames;
      assert.ok(
        f.every((x) => x.sensorName === "rtsp_sensor" && x.deviceName === "test-device" && x.isEncoded),
      );
      assert.deepEqual(f[0].size, [960, 1280, 3]);
      assert.equal(await decodesAsJpeg(f[5].image), "mjpeg,1280,960");
      assertIdsIncrease(f);
      for (let i = 1; i < f.length; i++) {
        assert.ok(f[i].captureTimestamp > f[i - 1].captureTimestamp, "capture times increase");
      }
      // Capture time is taken before JPEG encoding and publishing, never after the message was made.
      assert.ok(f.every((x) => x.captureTimestamp <= x.creationTimestamp));
      // The camera runs at about 10 fps: measure over the steady part (after the connection burst).
      const rate = captureRate(f.slice(10));
      assert.ok(rate > 8 && rate < 12, `rate ${rate.toFixed(2)} fps`);
      const warnings = node.stderr.filter((l) => / - WARNING :: CUDA decode on GPU 0 unavailable/.test(l));
      assert.equal(warnings.length, 1, "one CPU-fallback warning");
      assert.ok(
        node.stderr.some((l) =>
          /INFO :: Got image from rtsp_sensor, the image shape is \(960, 1280, 3\), time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/
            .test(l)
        ),
      );
      const ready = await httpGet(metricsPort, "/readyz");
      assert.equal(ready.status, 200, ready.text);
      const metrics = (await httpGet(metricsPort, "/metrics")).text;
      assert.match(metrics, /msight_frames_published_total \d+/);
      assert.match(metrics, /msight_last_frame_age_seconds 0\.\d+/);
      const r = new Redis({ host: "127.0.0.1", port: redis.port });
      const entry = JSON.parse((await r.hget(NODES_KEY, "rtsp_node"))!);
      r.disconnect();
      assert.equal(entry.publish_topic, "rtsp_topic");

      // SIGTERM: the node stops cleanly and its ffmpeg is gone.
      await stopsCleanly(node);
      const left = await new Deno.Command("pgrep", { args: ["-f", cam.url] }).output();
      assert.equal(new TextDecoder().decode(left.stdout).trim(), "", "no ffmpeg left behind");
    },
  );
});

Deno.test("rtsp node: several cameras in one process (--next) are each their own node, and one failing stops none", async () => {
  const ports = [freePort(), freePort(), freePort()];
  const deadCamera = `rtsp://127.0.0.1:${freePort()}/nobody`;
  await withRtspNode(
    { source: "mcity", path: "/group" },
    "group_frames",
    (url) => [
      ..."-n grp_a -pt group_frames -sn cam_a --frame-log-every 0 --metrics-port".split(" "),
      String(ports[0]),
      "-u",
      url,
      "--next",
      // Nobody listens there: this camera retries while the others stream.
      ..."-n grp_b -pt group_frames -sn cam_b --metrics-port".split(" "),
      String(ports[1]),
      "-u",
      deadCamera,
      "--next",
      // No ffmpeg at this path: the node ends with an error and is started again, the process runs on.
      ..."-n grp_c -pt group_frames -sn cam_c --ffmpeg /nonexistent/ffmpeg --metrics-port".split(" "),
      String(ports[2]),
      "-u",
      url,
      "--next",
      ..."-n grp_d -pt group_frames -sn cam_d --frame-log-every 0 -u".split(" "),
      url,
    ],
    async ({ redis, sink, node }) => {
      const of = (sensor: string) => sink.frames.filter((f) => f.sensorName === sensor);
      await waitFor(
        () => of("cam_a").length >= 20 && of("cam_d").length >= 20,
        30_000,
        "frames of cam_a and cam_d",
      );
      // grp_c failed and was started again at least twice (1 s, then 2 s later), without stopping the others.
      await node.waitForLine(/ - grp_c - ERROR :: ended with exit code 2: starting it again in/, 20_000);
      const restarts = () =>
        node.stderr.filter((l) => / - grp_c - ERROR :: ended with exit code 2/.test(l)).length;
      await waitFor(() => restarts() >= 2, 20_000, "grp_c started again twice");
      const before = of("cam_a").length;
      await waitFor(() => of("cam_a").length > before + 10, 20_000, "cam_a still streaming");
      assert.equal(of("cam_b").length + of("cam_c").length, 0);
      // Each node its own ids (one generator each, distinct workers): no id twice across the process.
      const ids = sink.frames.map((f) => f.frameId);
      assert.equal(new Set(ids).size, ids.length, "frame ids are unique across the nodes of the process");
      assertIdsIncrease(of("cam_a"));
      assertIdsIncrease(of("cam_d"));

      // Each node serves its own /metrics and /readyz, and is its own entry in MSIGHT:NODES.
      assert.equal((await httpGet(ports[0], "/readyz")).status, 200);
      const notReady = await httpGet(ports[1], "/readyz");
      assert.equal(notReady.status, 503, notReady.text);
      const metricsA = (await httpGet(ports[0], "/metrics")).text;
      const metricsB = (await httpGet(ports[1], "/metrics")).text;
      assert.match(metricsA, /msight_node_info\{[^}]*node="grp_a"/);
      assert.match(metricsB, /msight_node_info\{[^}]*node="grp_b"/);
      assert.ok(
        Number(/^msight_frames_published_total (\d+)/m.exec(metricsA)?.[1]) > 0,
        "grp_a counts its frames",
      );
      assert.match(metricsB, /^msight_frames_published_total 0$/m);
      const r = new Redis({ host: "127.0.0.1", port: redis.port });
      try {
        const entries = await r.hgetall(NODES_KEY);
        for (const name of ["grp_a", "grp_b", "grp_d"]) {
          assert.equal(JSON.parse(entries[name]).publish_topic, "group_frames", `${name} registered`);
        }
        // One signal stops them all, each in its own words; the registry is left empty.
        node.kill("SIGTERM");
        assert.equal(await node.exit, 0, node.stderr.slice(-10).join("\n"));
        for (const name of ["grp_a", "grp_b", "grp_c", "grp_d"]) {
          const lines = node.stderr.filter((l) => l.includes(` - ${name} - `));
          assert.equal(lines.filter((l) => /received SIGTERM: stopping/.test(l)).length, 1, name);
          assert.ok(lines.some((l) => / :: stopped$/.test(l)), `${name} says it stopped`);
        }
        assert.deepEqual(await r.hkeys(NODES_KEY), [], "every node unregistered");
      } finally {
        r.disconnect();
      }
      // Only the node without ffmpeg said anything critical (that ffmpeg is missing).
      const critical = node.stderr.filter((l) => /exiting now|CRITICAL/.test(l));
      assert.ok(
        critical.length > 0 && critical.every((l) => / - grp_c - CRITICAL :: .*ffmpeg/.test(l)),
        critical.join("\n"),
      );
    },
  );
});

Deno.test("rtsp node: a bad node in a --next group is named, and nothing starts", async () => {
  const cases: [string, RegExp][] = [
    [
      "-n x -pt t -sn s -u rtsp://h/1 --next -n y -pt t -sn s -u http://h/2",
      /^rtsp: error: node 2 of 2: invalid --url "http:\/\/h\/2"/,
    ],
    [
      "-n x -pt t -sn s -u rtsp://h/1 --next -n x -pt t -sn s -u rtsp://h/2",
      /^rtsp: error: two nodes named x in one process/,
    ],
    ["-n x -pt t -sn s -u rtsp://h/1 --next", /^rtsp: error: node 2 of 2 has no flags/],
    [
      "-n x -pt t -sn s -u rtsp://h/1 --metrics-port 9100 --next -n y -pt t -sn s -u rtsp://h/2 --metrics-port 9100",
      /^rtsp: error: --metrics-port 9100 is given to both x and y/,
    ],
  ];
  for (const [args, want] of cases) {
    const node = startNode("nodes/rtsp.ts", args.split(" "), {}, DENO_PERMS);
    const code = await node.exit;
    await node.stop();
    assert.equal(code, 2, node.stderr.join("\n"));
    assert.equal(node.stderr.length, 1, node.stderr.join("\n"));
    assert.match(node.stderr[0], want);
  }
});

Deno.test("rtsp node: raw BGR over UDP at half size, --gap, and a camera restart", async () => {
  await withRtspNode(
    { source: "synthetic", width: 640, height: 360, fps: 25, path: "/raw-udp" },
    "raw",
    (url) => [
      ..."-n raw_node -pt raw -sn synth --image-encoding raw --rtsp-transport udp -r 0.5 --gap 1 --frame-log-every 0 -u"
        .split(" "),
      url,
    ],
    async ({ cam, sink, node }) => {
      await waitFor(() => sink.frames.length >= 50, 30_000, "raw frames");
      const f = sink.frames[3];
      assert.equal(f.isEncoded, false);
      assert.deepEqual(f.size, [180, 320, 3]);
      assert.equal(f.image.length, 180 * 320 * 3);
      // --gap 1 halves 25 fps (measured past the burst of buffered frames that follows the connection).
      const rate = captureRate(sink.frames.slice(25));
      assert.ok(rate > 9 && rate < 16, `rate ${rate.toFixed(1)}`);
      assert.ok(node.stderr.some((l) => / over udp /.test(l)));

      await cam.restart();
      const before = sink.frames.length;
      // The reconnection backoff plus the camera's start: seconds idle, more on a loaded machine.
      await waitFor(() => sink.frames.length > before + 10, 45_000, "frames after the camera restarted");
      assert.ok(node.stderr.filter((l) => / over udp /.test(l)).length >= 2, "reconnected over udp again");
    },
  );
});

Deno.test("rtsp node: a stalled camera is detected and the node reconnects when it returns", async () => {
  const port = freePort();
  await withRtspNode(
    { source: "synthetic", width: 320, height: 240, fps: 25, path: "/stall", protocols: "tcp" },
    "t",
    (url) => [
      "--metrics-port",
      String(port),
      ..."-n stall_node -pt t -sn s --stall-timeout 2 --open-timeout 2 --frame-log-every 0 -u".split(" "),
      url,
    ],
    async ({ cam, sink, node }) => {
      await waitFor(() => sink.frames.length >= 10, 30_000, "frames");
      assert.equal((await httpGet(port, "/readyz")).status, 200);
      cam.pause();
      try {
        await node.waitForLine(/WARNING :: stalled: no frame for \d/, 15_000);
        // Not ready while no frames flow.
        const r = await httpGet(port, "/readyz");
        assert.equal(r.status, 503);
        assert.match(r.text, /not ready: (camera|no frame)/);
        // Counted as a stall whichever noticed first: our watchdog or ffmpeg's own read timeout.
        const metrics = (await httpGet(port, "/metrics")).text;
        assert.match(metrics, /msight_stalls_total [1-9]/);
      } finally {
        cam.resume();
      }
      const before = sink.frames.length;
      await waitFor(() => sink.frames.length > before + 10, 30_000, "frames after the stall");
    },
  );
});

Deno.test("rtsp node: a bad URL and a missing ffmpeg exit 2 with one line", async () => {
  const env = { REDIS_URL: "redis://127.0.0.1:1/0", MSIGHT_EDGE_DEVICE_NAME: "d" };
  const bad = startNode(
    "nodes/rtsp.ts",
    ["-n", "x", "-pt", "t", "-sn", "s", "-u", "http://cam/live"],
    env,
    DENO_PERMS,
  );
  assert.equal(await bad.exit, 2);
  assert.equal(bad.stderr.length, 1, bad.stderr.join("\n"));
  assert.match(bad.stderr[0], /http:\/\/cam\/live/);
  assert.match(bad.stderr[0], /rtsp:\/\//);

  const redis = await startRedis();
  try {
    const noff = startNode(
      "nodes/rtsp.ts",
      ["-n", "x", "-pt", "t", "-sn", "s", "-u", "rtsp://127.0.0.1:9/x", "--ffmpeg", "/nonexistent/ffmpeg"],
      redis.env,
      ["-A"],
    );
    assert.equal(await noff.exit, 2);
    const lines = noff.stderr.filter((l) => !/ - (INFO|WARNING) :: /.test(l));
    assert.equal(lines.length, 1, noff.stderr.join("\n"));
    assert.match(lines[0], /ffmpeg/);
  } finally {
    await redis.stop();
  }
});

Deno.test("rtsp node: --max-fps 10 thins a 25 fps camera in ffmpeg, never duplicating frames", async () => {
  await withRtspNode(
    { source: "synthetic", width: 320, height: 240, fps: 25, path: "/maxfps" },
    "t",
    (
      url,
    ) => [
      "-n",
      "maxfps_node",
      "-pt",
      "t",
      "-sn",
      "s",
      "--max-fps",
      "10",
      "--frame-log-every",
      "0",
      "-u",
      url,
    ],
    async ({ sink }) => {
      await waitFor(() => sink.frames.length >= 45, 30_000, "frames");
      const s = sink.frames.slice(10);
      const rate = captureRate(s);
      assert.ok(rate > 8.5 && rate < 11.5, `rate ${rate.toFixed(2)} fps`);
      // One frame per 1/10 s slot of a 25 fps stream: gaps of 0.08 or 0.12 s, never two frames in one 0.04 s step.
      const gaps = s.slice(1).map((f, i) => f.captureTimestamp - s[i].captureTimestamp);
      assert.ok(gaps.every((g) => g > 0.05), `gaps ${gaps.map((g) => g.toFixed(3)).join(" ")}`);
    },
  );
});

Deno.test("rtsp node on NATS: the camera's frames go on core NATS, subject = topic, as JPEG ImageData MSight's NATS nodes read", async () => {
  const nats = await startNats();
  const cam = await startRtspServer({
    source: "synthetic",
    width: 320,
    height: 240,
    fps: 10,
    path: "/nats.stream",
  });
  // A plain NATS client, as MSight's NATSPubSub subscribes.
  const raw = await connectGuarded({ servers: nats.url });
  const frames: ImageData[] = [];
  const sub = raw.subscribe("rtsp_topic", {
    callback: (_e, m) => void frames.push(decodeMessage(m.data) as ImageData),
  });
  const node = startNode(
    "nodes/rtsp.ts",
    ["-n", "rtsp_node", "-pt", "rtsp_topic", "--sensor-name", "cam", "-u", cam.url],
    nats.env,
    DENO_PERMS,
  );
  try {
    await waitFor(() => frames.length >= 10, 30_000, "10 frames on NATS");
    assert.ok(frames.every((x) => x.sensorName === "cam" && x.deviceName === "test-device" && x.isEncoded));
    assert.equal(await decodesAsJpeg(frames[3].image), "mjpeg,320,240");
    assertIdsIncrease(frames);
    assert.ok(node.stderr.some((l) => /started on device test-device \(NATS nats:/.test(l)));
    assert.ok(node.stderr.some((l) => /frames go on plain pub\/sub only/.test(l)));
    await stopsCleanly(node);
  } finally {
    sub.unsubscribe();
    await raw.close();
    await node.stop();
    await cam.stop();
    await nats.stop();
  }
});
