/**
 * Our nodes mixed with MSight_Core 2.0.2's own Python nodes on the two other back ends MSight and we share, both
 * sides configured by MSight's own variables, and the real RTSP test camera (Mcity frames, 1280×960, 10 fps):
 *
 * - NATS: a real `nats-server -js`, `MSIGHT_PUBSUB_BACKEND=nats`, `MSIGHT_NATS_SERVERS`. MSight's nodes run its
 *   real `NATSPubSub` on the vendored nats-py (test/peers/nats_py). MSight keeps its registry (`MSIGHT:NODES`,
 *   `MSIGHT:TOPICS`) in Redis whatever the data plane (`get_redis_client()` in every node), so the test gives it
 *   one with `MSIGHT_REDIS_MESSAGE_BROKER_HOST`/`_PORT`, and ours then keep theirs there too.
 * - A Redis Cluster of 3 masters + 3 replicas with `MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER=true` (MSight:
 *   redis-py's `RedisCluster`, Debian's python3-redis 4.3.4; classic PUBLISH/SUBSCRIBE). Ours get `_CLUSTER_NODES`
 *   as a Python list literal; MSight's get `_HOST`/`_PORT` as the cluster's entry point, its other documented form,
 *   because MSight 2.0.2 cannot start with `_CLUSTER_NODES`: `get_redis_client()` hands `RedisCluster` the nodes as
 *   dicts where redis-py takes `ClusterNode` objects (`AttributeError: 'dict' object has no attribute 'name'`;
 *   redis-py 4.3.4 here, and the current redis-py has the same code). That defect of MSight's is kept visible by
 *   its own test below, which fails once MSight fixes it.
 *
 * On each: MSight rtsp → our aggregator → our dumper (with status both ways), and our rtsp → MSight aggregator →
 * MSight dumper. Each asserts frames in = frames in segments, every frame id byte-exact, every segment playing with
 * no ffmpeg warning. As in interop_test.ts, MSight's aggregator loses its partial last segment at stop (MSight's
 * behaviour: only its full segments are counted) and its RTSP node prints a traceback when stopped (not asserted).
 */
import assert from "node:assert/strict";
import { isoMicros } from "../../src/bus/describe.ts";
import { startNats } from "../helpers/nats_server.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../helpers/rtsp_server.ts";
import { DENO, type NodeProcess, startNode, startProcess } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { MSIGHT_PYTHONPATH, msightAvailable, msightCommand, PYTHON } from "./msight.ts";
import {
  assertSameIds,
  ffmpegWarnings,
  outOfOrder,
  type Saved,
  saved,
  type Tap,
  tapNats,
  tapRedis,
} from "./interop_util.ts";

const BUFFER = 20;
/** Frames each source publishes before it is stopped (a little over two segments of 20). */
const FRAMES = 46;
/**
 * Our aggregator's `--fps` for MSight's 10 fps camera node: above 10 on purpose. MSight stamps each frame when PyAV
 * hands it over, and on a loaded machine its RTSP node, held up after it starts, hands over the frames buffered
 * meanwhile in a burst (measured here on the cluster: ~35 frames 15-40 ms apart, about 1-2.5 s after its first).
 * Our aggregator at `--fps 10` then judges the source faster than 10 fps in its start-up probe and thins it
 * (28 of 88 frames, `frames_accounted_total{outcome="thinned"}`, in one run). That is a defect of our aggregator's
 * probe, reported, not this file's subject (interop_test.ts keeps `--fps 10` on standalone Redis, where it too lost
 * a frame in one loaded run): here the frames must cross the bus both ways, each once and byte-exact.
 */
const OUR_AGG_FPS = 25;
/**
 * The NATS server's `max_payload`, above its 1 MB default. MSight's aggregator publishes each segment as one core
 * NATS message from a thread; nats-py raises `MaxPayloadError` for one over the server's limit, which ends that
 * thread and loses the segment (so read in MSight's and nats-py's code, not run here). 20-frame 1280×960 H.264
 * segments of this camera are 0.65-0.9 MB (our aggregator's, measured), close to that default.
 */
const NATS_MAX_PAYLOAD = 8 * 1024 * 1024;

/** A data plane the test starts, with MSight's variables for it. */
interface Plane {
  /** For our nodes. */
  env: Record<string, string>;
  /** For MSight's nodes: the same variables, but for MSight's defect on a cluster (see above). */
  msightEnv: Record<string, string>;
  /** Records every frame published on a topic. */
  tap(topic: string): Promise<Tap>;
  /** How many clients subscribed to a topic (MSight's nodes print nothing when they subscribe). */
  subscribers(topic: string): Promise<number>;
  stop(): Promise<void>;
}

async function natsPlane(): Promise<Plane> {
  const nats = await startNats({ monitor: true, maxPayload: NATS_MAX_PAYLOAD });
  const registry = await startRedis().catch(async (e) => {
    await nats.stop();
    throw e;
  });
  const env = {
    ...nats.env,
    MSIGHT_REDIS_MESSAGE_BROKER_HOST: "127.0.0.1",
    MSIGHT_REDIS_MESSAGE_BROKER_PORT: String(registry.port),
  };
  return {
    env,
    msightEnv: env,
    tap: (topic) => tapNats(nats.url, topic),
    async subscribers(topic) {
      const res = await fetch(`http://127.0.0.1:${nats.monitorPort}/connz?subs=1`);
      const body = await res.json() as { connections?: { subscriptions_list?: string[] }[] };
      return (body.connections ?? []).filter((c) => c.subscriptions_list?.includes(topic)).length;
    },
    async stop() {
      await registry.stop();
      await nats.stop();
    },
  };
}

/** `_CLUSTER_NODES` as MSight documents it: a Python list literal of host:port. */
const nodesList = (c: { ports: number[] }) =>
  `[${c.ports.slice(0, 3).map((p) => `'127.0.0.1:${p}'`).join(", ")}]`;

async function clusterPlane(): Promise<Plane> {
  const c = await startRedisCluster();
  return {
    env: {
      MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "true",
      MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES: nodesList(c),
    },
    msightEnv: {
      MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "true",
      MSIGHT_REDIS_MESSAGE_BROKER_HOST: "127.0.0.1",
      MSIGHT_REDIS_MESSAGE_BROKER_PORT: String(c.ports[0]),
    },
    // Classic pub/sub: the cluster forwards every PUBLISH to every node, and each node counts its own subscribers.
    tap: (topic) => tapRedis(c.ports[0], topic),
    async subscribers(topic) {
      let n = 0;
      for (const p of c.ports) n += Number((await c.cli(p, "PUBSUB", "NUMSUB", topic)).trim().split("\n")[1]);
      return n;
    },
    stop: () => c.stop(),
  };
}

const missing = await msightAvailable();
if (missing) console.log(`MSight interop tests not run: Debian's Python lacks MSight's imports (${missing})`);

for (const [label, start] of [["NATS", natsPlane], ["a Redis Cluster", clusterPlane]] as const) {
  Deno.test({
    name: `interop on ${label}: MSight 2.0.2's Python nodes and ours exchange frames both ways`,
    ignore: missing !== null,
    async fn(t) {
      const procs: NodeProcess[] = [];
      let plane: Plane | undefined;
      let cam: RtspServer | undefined;
      const root = await Deno.makeTempDir({ prefix: "interop-bus-" });
      try {
        plane = await start();
        cam = await startRtspServer({ source: "mcity", path: "/interop.stream" });
        const pl = plane;
        const camUrl = cam.url;
        const oursEnv = { ...pl.env, MSIGHT_EDGE_DEVICE_NAME: "test-device" };
        const msEnv = {
          ...pl.msightEnv,
          MSIGHT_EDGE_DEVICE_NAME: "msight-device",
          PYTHONPATH: MSIGHT_PYTHONPATH,
          PYTHONDONTWRITEBYTECODE: "1",
        };
        const msight = (module: string, args: string[]) => {
          const p = startProcess(PYTHON, ["-u", "-m", `cli.${module}`, ...args], msEnv, root);
          procs.push(p);
          return p;
        };
        const ours = (script: string, args: string[]) => {
          const p = startNode(script, args, oursEnv);
          procs.push(p);
          return p;
        };
        const stopped = async (p: NodeProcess, signal: Deno.Signal) => {
          p.kill(signal);
          await Promise.race([p.exit, new Promise((r) => setTimeout(r, 10_000))]);
          await p.stop();
        };
        const subscribed = (topics: string[], what: string) =>
          waitFor(
            async () => (await Promise.all(topics.map((x) => pl.subscribers(x)))).every((n) => n > 0),
            30_000,
            what,
            200,
          );
        /** Status both ways: MSight's lists ours RUNNING, ours lists MSight's RUNNING (one shared registry). */
        const statusBothWays = async (names: string[]) => {
          const ms = msight("status", []);
          assert.equal(await ms.exit, 0, ms.stderr.join("\n"));
          const table = ms.stdout.join("\n");
          for (const n of names) {
            assert.match(
              table,
              new RegExp(`\\|\\s*${n}\\s*\\|.*\\|\\s*RUNNING\\s*\\|`),
              `MSight's status: ${n}\n${table}`,
            );
          }
          const st = startProcess(DENO, ["run", "-A", "nodes/status.ts", "--json"], oursEnv);
          procs.push(st);
          assert.equal(await st.exit, 0, st.stderr.join("\n"));
          const nodes = JSON.parse(st.stdout.join("\n")).nodes as { name: string; judged: string }[];
          for (const n of names) {
            assert.equal(nodes.find((x) => x.name === n)?.judged, "RUNNING", `our status: ${n}`);
          }
        };
        /** Starts a source, lets it publish FRAMES frames, stops it; returns the frames as published. */
        const runSource = async (
          topic: string,
          begin: () => NodeProcess,
          stopSignal: Deno.Signal,
          during?: () => Promise<void>,
        ) => {
          const tapped = await pl.tap(topic);
          try {
            const src = begin();
            await waitFor(() => tapped.frames.length >= FRAMES, 60_000, `${FRAMES} frames on ${topic}`)
              .catch((e) => {
                throw new Error(`${e.message}\n${src.stderr.slice(-20).join("\n")}`);
              });
            if (during) await during();
            await stopped(src, stopSignal);
            await new Promise((r) => setTimeout(r, 500)); // the last publishes land
            return [...tapped.frames];
          } finally {
            await tapped.close();
          }
        };

        await t.step("MSight rtsp → our aggregator → our dumper (+ status both ways)", async () => {
          const dir = `${root}/a`;
          const dumper = ours("nodes/dumper.ts", ["-n", "our_dumper_a", "-st", "a_video", "-sd", dir]);
          const metricsPort = freePort();
          const agg = ours("nodes/aggregator.ts", [
            ...[
              "-n",
              "our_agg_a",
              "-st",
              "a_images",
              "-pt",
              "a_video",
              "--metrics-port",
              String(metricsPort),
            ],
            ...["--fps", String(OUR_AGG_FPS), "--buffer-size", String(BUFFER), "--overlap-size", "0"],
            ...["--max-idle", "2"],
          ]);
          await Promise.all([
            dumper.waitForLine(/reading a_video/, 30_000),
            subscribed(["a_images"], "our aggregator subscribed"),
          ]);
          const frames = await runSource(
            "a_images",
            () =>
              msight("launch_rtsp", [
                ...["-n", "ms_rtsp_a", "-pt", "a_images", "--sensor-name", "ms_cam_a", "-u", camUrl],
                ...["--rtsp-transport", "tcp"],
              ]),
            "SIGINT",
            () => statusBothWays(["our_agg_a", "our_dumper_a", "ms_rtsp_a"]),
          );
          // A frame MSight sent after a later one is dropped as late and counted; every other frame must be in a
          // segment once.
          const late = outOfOrder(frames);
          const want = frames.filter((f) => !late.includes(f)).map((f) => f.id);
          let segs: Saved[] = [];
          await waitFor(
            async () => {
              segs = await saved(dir, ".json");
              return segs.flatMap((s) => s.ids).length >= want.length;
            },
            30_000,
            "every frame in a saved segment",
          ).catch(async (e) => {
            // Which frames are missing, why the aggregator says it did not use them, and the capture-time gaps of
            // MSight's source (stamped when PyAV hands a frame over: bursts after a stall show here).
            const kept = new Set(segs.flatMap((s) => s.ids));
            const lost = frames.flatMap((f, i) => kept.has(f.id) ? [] : [i]).join(",");
            const gaps = frames.slice(1).map((f, i) => Math.round((f.t - frames[i].t) * 1000)).join(",");
            const accounted = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
              .then((r) => r.text())
              .then((m) =>
                m.split("\n").filter((l) => l.startsWith("msight_frames_accounted_total")).join("; ")
              )
              .catch((err) => `no metrics: ${err}`);
            throw new Error(
              `${e.message}: ${kept.size} of ${want.length} (+${late.length} late), missing #${lost} (${accounted}); ` +
                `gaps (ms) ${gaps}\n` +
                agg.stderr.slice(-20).join("\n"),
            );
          });
          assertSameIds(segs.flatMap((s) => s.ids), want, `MSight rtsp → ours on ${label}`);
          const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
          const lateCounted = /^msight_frames_accounted_total\{outcome="late",sensor="ms_cam_a"\} (\d+)$/m
            .exec(metrics);
          assert.equal(
            Number(lateCounted?.[1] ?? 0),
            late.length,
            "MSight's out-of-order frames, counted as late",
          );
          for (const s of segs) {
            assert.equal(await ffmpegWarnings(s.mp4), "", s.mp4);
            assert.deepEqual([s.meta.codec, s.meta.width, s.meta.height], ["h264", 1280, 960]);
            assert.equal(s.meta.start, isoMicros((s.meta.capture_timestamps as number[])[0]));
            assert.equal(s.meta.frame_count, s.ids.length);
            assert.equal(s.meta.sensor_name, "ms_cam_a");
          }
          await stopped(agg, "SIGTERM");
          await stopped(dumper, "SIGTERM");
        });

        await t.step("our rtsp → MSight aggregator → MSight dumper", async () => {
          const dir = `${root}/b`;
          const dumper = msight("launch_video_local_dumper", [
            "-n",
            "ms_dumper_b",
            "-st",
            "b_video",
            "-sd",
            dir,
          ]);
          const agg = msight("launch_image_to_video_aggregator", [
            ...["-n", "ms_agg_b", "-st", "b_images", "-pt", "b_video"],
            ...["--fps", "10", "--buffer-size", String(BUFFER), "--overlap-size", "0", "--codec", "libx264"],
          ]);
          await subscribed(["b_images", "b_video"], "MSight's aggregator and dumper subscribed");
          const frames = await runSource(
            "b_images",
            () =>
              ours("nodes/rtsp.ts", [
                "-n",
                "our_rtsp_b",
                "-pt",
                "b_images",
                "-sn",
                "our_cam_b",
                "-u",
                camUrl,
              ]),
            "SIGTERM",
          );
          // MSight publishes only full segments (its partial one is lost at stop: MSight's behaviour).
          const full = Math.floor(frames.length / BUFFER);
          assert.ok(full >= 2);
          let segs: Saved[] = [];
          await waitFor(
            async () => {
              segs = await saved(dir, "_metadata.json");
              return segs.length >= full;
            },
            60_000,
            `${full} MSight segments`,
          ).catch((e) => {
            throw new Error(`${e.message}\n${[...agg.stderr, ...dumper.stderr].slice(-30).join("\n")}`);
          });
          assertSameIds(
            segs.flatMap((s) => s.ids),
            frames.slice(0, full * BUFFER).map((f) => f.id),
            `ours → MSight on ${label}`,
          );
          for (const s of segs) {
            assert.equal(await ffmpegWarnings(s.mp4), "", s.mp4);
            assert.equal(s.meta.sensor_name, "our_cam_b");
            assert.deepEqual(
              s.meta.capture_timestamps,
              frames.filter((f) => s.ids.includes(f.id)).map((f) => f.t),
            );
          }
          await stopped(agg, "SIGTERM");
          await stopped(dumper, "SIGTERM");
        });
      } finally {
        for (const p of procs) await p.stop();
        await cam?.stop();
        await plane?.stop();
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "MSight 2.0.2 with MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES cannot start (its defect, kept visible)",
  ignore: missing !== null,
  async fn() {
    // Fails before connecting: no cluster needed. When this test fails, MSight has fixed it: give its nodes
    // `_CLUSTER_NODES` in the interop test above and remove this one.
    const out = await msightCommand("status", [], {
      MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "true",
      MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES: nodesList({ ports: [7000, 7001, 7002] }),
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.notEqual(out.code, 0);
    assert.match(err, /AttributeError: 'dict' object has no attribute 'name'/, err);
  },
});
