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
import { startNats } from "../helpers/nats_server.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../helpers/rtsp_server.ts";
import { msightAvailable, msightCommand } from "./msight.ts";
import { tapNats, tapRedis } from "./interop_util.ts";
import { type InteropPlane, InteropRun, msightRtspToOurs, ourRtspToMsight } from "./interop_run.ts";

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

/** A data plane the test starts and stops. */
interface Plane extends InteropPlane {
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
      let plane: Plane | undefined;
      let cam: RtspServer | undefined;
      let run: InteropRun | undefined;
      const root = await Deno.makeTempDir({ prefix: "interop-bus-" });
      try {
        plane = await start();
        cam = await startRtspServer({ source: "mcity", path: "/interop.stream" });
        const r = run = new InteropRun(plane, root, cam.url);
        await t.step(
          "MSight rtsp → our aggregator → our dumper (+ status both ways)",
          () => msightRtspToOurs(r, { tag: "a", aggFps: OUR_AGG_FPS }),
        );
        await t.step("our rtsp → MSight aggregator → MSight dumper", () => ourRtspToMsight(r, { tag: "b" }));
      } finally {
        await run?.stopAll();
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
