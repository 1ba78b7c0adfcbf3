/**
 * Whole pipelines (real camera → rtsp → aggregator → dumper processes) on clustered back ends. On a 3-server NATS
 * JetStream cluster, the server holding the aggregator's connection and leading the segment stream is SIGKILLed
 * mid-run: no node exits, and the dumper's files are the segments the aggregator published, each once. And two
 * cameras through two aggregators on different topics share one cluster (Redis Cluster, NATS): every segment of
 * both topics stored once, each camera's frames only in its own topic's segments.
 */
import assert from "node:assert/strict";
import { connectGuarded } from "../../src/bus/nats/transport.ts";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { jsonFiles } from "../helpers/launcher.ts";
import { run } from "../helpers/media.ts";
import { startNatsCluster } from "../helpers/nats_server.ts";
import { waitFor } from "../helpers/net.ts";
import { type Chain, startChain, stopChain } from "../helpers/pipeline.ts";
import type { NodeProcess } from "../helpers/process.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { type RtspServer, startRtspServer } from "../helpers/rtsp_server.ts";
import { escapeName, segmentStreamName } from "../../src/bus/nats/names.ts";
import { NODES_BUCKET } from "../../src/bus/nats/registry.ts";
import { delay } from "../../src/runtime/async.ts";

const camera = (pattern: string, path: string): Promise<RtspServer> =>
  startRtspServer({ source: "synthetic", pattern, width: 320, height: 240, fps: 10, path });

/** True while the process has not exited. */
const running = (p: NodeProcess) => Promise.race([p.exit.then(() => false), delay(100).then(() => true)]);

/** The stream's leader (a server name), or undefined while it has none or the request fails (a failover). */
async function leaderOf(jsm: JetStreamManager, stream: string): Promise<string | undefined> {
  try {
    return (await jsm.streams.info(stream)).cluster?.leader || undefined;
  } catch {
    return undefined; // Asked again by the caller's wait.
  }
}

Deno.test("pipeline on a 3-server NATS cluster: the server of the aggregator's connection and the segment stream's leader is SIGKILLed mid-run; no node exits, every segment published is stored once", async () => {
  const cluster = await startNatsCluster(3);
  const nc = await connectGuarded({ servers: cluster.ports.map((p) => `127.0.0.1:${p}`), name: "test" });
  const jsm = await jetstreamManager(nc);
  const cam = await camera("ball", "/cluster.stream");
  const dir = await Deno.makeTempDir();
  const nodes: NodeProcess[] = [];
  try {
    const chain = await startChain(cluster.env, { sensor: "cam", cameraUrl: cam.url, dir }, nodes);
    await waitFor(async () => (await jsonFiles(dir)).length >= 2, 90_000, "2 segments on disk");

    // What a node creates on a cluster has 3 replicas (a leader and 2 followers).
    const stream = segmentStreamName("aggregated_video");
    const info = await jsm.streams.info(stream);
    assert.equal(info.config.num_replicas, 3, "segment stream replicas");
    assert.equal(info.cluster?.replicas?.length, 2, "segment stream followers");
    const group = await jsm.consumers.info(stream, escapeName("cam_dumper"));
    assert.equal(group.cluster?.replicas?.length, 2, "the dumper's consumer group has the stream's replicas");
    assert.equal((await jsm.streams.info(`KV_${NODES_BUCKET}`)).config.num_replicas, 3, "registry replicas");

    // The server to kill: the aggregator's; the stream's leader is moved there (a step-down elects one of the
    // other two at random), so the kill takes both the producer's connection and the stream's leader.
    const target = await cluster.serverOf("cam_agg");
    assert.ok(target !== undefined, "the aggregator is connected to one of the servers");
    const targetName = cluster.names[target];
    for (let tries = 0; tries < 8; tries++) {
      const leader = await leaderOf(jsm, stream);
      if (leader === targetName) break;
      await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 10_000 })
        .catch((err) => console.log(`step-down: ${err}`));
      await waitFor(
        async () => ![undefined, leader].includes(await leaderOf(jsm, stream)),
        60_000,
        "a new stream leader",
        250,
      ).catch((err) => console.log(String(err))); // Tried again, or the kill goes ahead without the leader.
    }
    if (await leaderOf(jsm, stream) !== targetName) {
      console.log(`the stream's leader stayed off ${targetName}: killing the aggregator's server only`);
    }
    const before = (await jsonFiles(dir)).length;
    await cluster.kill(target);

    // The pipeline goes on through the surviving two.
    await waitFor(
      async () => (await jsonFiles(dir)).length >= before + 5,
      120_000,
      `5 more segments on disk after the kill (had ${before})`,
    );
    await chain.aggregator.waitForLine(/NATS connection restored/, 60_000);
    for (const n of [chain.rtsp, chain.aggregator, chain.dumper]) {
      assert.ok(await running(n), "no node exited");
    }
    const stored = await stopChain(chain, { redelivered: true });
    assert.ok(stored >= before + 5, `${stored} segments`);
  } finally {
    for (const n of nodes) await n.stop();
    await cam.stop();
    await nc.close();
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The mean colour of each frame of an MP4, as [r, g, b]. */
async function frameColours(mp4: string): Promise<number[][]> {
  const args = [
    "-v",
    "error",
    "-i",
    mp4,
    "-vf",
    "scale=1:1",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "pipe:1",
  ];
  const rgb = await run("ffmpeg", args);
  return Array.from({ length: rgb.length / 3 }, (_, i) => [...rgb.subarray(3 * i, 3 * i + 3)]);
}

const clusters = [
  ["a Redis Cluster", async () => {
    const c = await startRedisCluster();
    return { env: c.env, stop: c.stop };
  }],
  ["a 3-server NATS cluster", async () => {
    const c = await startNatsCluster(3);
    return { env: c.env, stop: c.stop };
  }],
] as const;

for (const [label, start] of clusters) {
  Deno.test(`two cameras → two aggregators on different topics share ${label}: every segment of both topics stored once, frames not mixed`, async () => {
    const be = await start();
    const cams: RtspServer[] = [];
    const root = await Deno.makeTempDir();
    const nodes: NodeProcess[] = [];
    try {
      // One red camera and one blue: a frame in the wrong topic's segments would show its colour there.
      const colours = { cam_a: "red", cam_b: "blue" } as const;
      const chains: Chain[] = [];
      for (const [sensor, pattern] of Object.entries(colours)) {
        const cam = await camera(pattern, `/${sensor}.stream`);
        cams.push(cam);
        const dir = `${root}/${sensor}`;
        await Deno.mkdir(dir);
        const topics = { frameTopic: `frames_${sensor}`, segmentTopic: `video_${sensor}` };
        chains.push(await startChain(be.env, { sensor, cameraUrl: cam.url, dir, ...topics }, nodes));
      }
      for (const c of chains) {
        await waitFor(
          async () => (await jsonFiles(c.opts.dir)).length >= 3,
          90_000,
          `3 segments of ${c.opts.sensor}`,
        );
      }
      for (const c of chains) {
        // Its files only, each once (stopChain); each frame its own camera's colour.
        assert.ok(await stopChain(c) >= 3);
        const red = colours[c.opts.sensor as keyof typeof colours] === "red";
        for (const f of await jsonFiles(c.opts.dir)) {
          const frames = await frameColours(`${c.opts.dir}/${f.replace(/\.json$/, ".mp4")}`);
          assert.ok(frames.length > 0, `${f} has frames`);
          for (const [r, g, b] of frames) {
            const ok = red ? r > g + 60 && r > b + 60 : b > r + 60 && b > g + 60;
            assert.ok(ok, `${f}: a frame of rgb ${r},${g},${b} among ${red ? "red" : "blue"} ones`);
          }
        }
      }
    } finally {
      for (const n of nodes) await n.stop();
      for (const cam of cams) await cam.stop();
      await be.stop();
      await Deno.remove(root, { recursive: true });
    }
  });
}
