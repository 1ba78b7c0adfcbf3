/**
 * The sinks on every back end, as users run them: real `nats-server -js`, a real 3 + 3 Redis Cluster and a
 * standalone Redis; segments appended through the bus interface (as the aggregator does); real dumper processes,
 * real files. One dumper stores every segment once; two dumpers sharing a `--group-id` share them, and a member
 * that cannot store and is then SIGKILLed has its segments taken over by the other. On the cluster, the master
 * holding the topic's stream is killed mid-run: the dumper does not exit and stores every segment once. And the
 * whole pipeline (camera → rtsp → aggregator → dumper) on NATS and on the cluster.
 */
import assert from "node:assert/strict";
import { startNats } from "../helpers/nats_server.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { type NodeProcess, startNode } from "../helpers/process.ts";
import { waitFor } from "../helpers/net.ts";
import { startChain, stopChain } from "../helpers/pipeline.ts";
import { makeSegment } from "../helpers/segments.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { clusterStreamKey, type RedisClusterBackend } from "../../src/bus/redis_cluster/mod.ts";
import type { VideoData } from "../../src/bus/message.ts";
import { selectBus } from "../../src/bus/select.ts";
import type { Bus } from "../../src/bus/types.ts";
import { encodeMessage } from "../../src/bus/wire.ts";
import { Logger } from "../../src/runtime/log.ts";

const TOPIC = "aggregated_video";
const CAPS = { maxLen: 1000, maxAgeS: 0 };

/** A back end the test starts: the environment a node needs to use it, and a bus for the test's own appends. */
interface Backend {
  env: Record<string, string>;
  bus: Bus;
  stop(): Promise<void>;
}

const quiet = () => new Logger({ device: "t", node: "t", level: "CRITICAL", sink: () => {} });

async function nats(): Promise<Backend> {
  const server = await startNats();
  const bus = await connectBus(selectBus({ busUrl: server.url, env: () => undefined }), quiet(), {
    name: "t",
  });
  return {
    env: server.env,
    bus,
    async stop() {
      await bus.close();
      await server.stop();
    },
  };
}

async function cluster(): Promise<Backend> {
  const c = await startRedisCluster();
  const bus = await connectBus(selectBus({ busUrl: c.url, env: () => undefined }), quiet(), { name: "t" });
  return {
    env: c.env,
    bus,
    async stop() {
      await bus.close();
      await c.stop();
    },
  };
}

async function redis(): Promise<Backend> {
  const r = await startRedis();
  const sel = selectBus({ busUrl: `redis://127.0.0.1:${r.port}`, env: () => undefined });
  const bus = await connectBus(sel, quiet(), { name: "t", publisher: true });
  return {
    env: r.env,
    bus,
    async stop() {
      await bus.close();
      await r.stop();
    },
  };
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

const jsons = async (dir: string) => (await listDir(dir)).filter((n) => n.endsWith(".json"));

function dumper(env: Record<string, string>, name: string, dir: string, extra: string[] = []): NodeProcess {
  return startNode("nodes/dumper.ts", ["-n", name, "-st", TOPIC, "--save-dir", dir, ...extra], env);
}

/** Segments of one camera, 10 s apart, so each has its own file name. */
async function segments(n: number, from = 0): Promise<VideoData[]> {
  const out: VideoData[] = [];
  for (let i = from; i < from + n; i++) out.push(await makeSegment("cam", 1769272000 + i * 10));
  return out;
}

/** Each segment stored exactly once in `dir`: its .mp4 equal to the segment's video, nothing else there. */
async function assertStoredOnce(dir: string, segs: VideoData[]): Promise<void> {
  const names = await listDir(dir);
  assert.equal(names.length, 2 * segs.length, names.join("\n"));
  for (const n of names) {
    assert.match(n, /^cam_\d{8}_\d{6}_\d{6}\.(mp4|json)$/, "no temporary or duplicate files");
  }
  // Read as text: the 64-bit ids lose digits through JSON.parse.
  const texts = await Promise.all((await jsons(dir)).map((j) => Deno.readTextFile(`${dir}/${j}`)));
  for (const seg of segs) {
    const id = new RegExp(`"frame_id": ?${seg.frameId}\\b`);
    assert.equal(texts.filter((t) => id.test(t)).length, 1, `segment ${seg.frameId} stored once`);
  }
  for (const mp4 of names.filter((n) => n.endsWith(".mp4"))) {
    assert.deepEqual(await Deno.readFile(`${dir}/${mp4}`), segs[0].video);
  }
}

for (const [label, start] of [["NATS (JetStream)", nats], ["a Redis Cluster", cluster]] as const) {
  Deno.test(`dumper on ${label}: segments appended before and after it starts are each stored once`, async () => {
    const be = await start();
    const dir = await Deno.makeTempDir();
    const segs = await segments(8);
    let node: NodeProcess | undefined;
    try {
      for (const s of segs.slice(0, 4)) await be.bus.segments.append(TOPIC, encodeMessage(s), CAPS);
      node = dumper(be.env, "video_dumper", dir);
      await node.waitForLine(/from its durable stream as consumer group video_dumper/, 30_000);
      await node.waitForLine(/started on device test-device \((NATS|Redis Cluster) /);
      for (const s of segs.slice(4)) await be.bus.segments.append(TOPIC, encodeMessage(s), CAPS);
      await waitFor(async () => (await jsons(dir)).length >= 8, 30_000, "8 segments on disk");
      // A redelivery would show as a second file or an "already saved" line: give it time to happen.
      await new Promise((r) => setTimeout(r, 1000));
      await assertStoredOnce(dir, segs);
      assert.ok(
        !node.stderr.concat(node.stdout).some((l) => /already saved/.test(l)),
        "none delivered twice",
      );
      node.kill("SIGTERM");
      assert.equal(await node.exit, 0);
    } finally {
      await node?.stop();
      await be.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

for (const [label, start] of [["Redis", redis], ["NATS", nats]] as const) {
  Deno.test(`dumpers sharing a --group-id on ${label}: a member that cannot store is SIGKILLed, the other stores everything once`, async () => {
    const be = await start();
    const root = await Deno.makeTempDir();
    const [dirA, dirB] = [`${root}/a`, `${root}/b`];
    const segs = await segments(10);
    const group = ["--group-id", "video_dumpers", "--claim-idle", "2", "--transport", "stream"];
    let a: NodeProcess | undefined, b: NodeProcess | undefined;
    try {
      a = dumper(be.env, "dumper_a", dirA, group);
      b = dumper(be.env, "dumper_b", dirB, group);
      await a.waitForLine(
        /from its durable stream as consumer group video_dumpers \(member dumper_a\)/,
        30_000,
      );
      await b.waitForLine(
        /from its durable stream as consumer group video_dumpers \(member dumper_b\)/,
        30_000,
      );
      // A's folder becomes a file: every segment handed to A fails there and stays unacknowledged with A.
      await Deno.remove(dirA, { recursive: true });
      await Deno.writeTextFile(dirA, "not a folder");
      for (const s of segs) {
        await be.bus.segments.append(TOPIC, encodeMessage(s), CAPS);
        await new Promise((r) => setTimeout(r, 200));
      }
      await a.waitForLine(/not saved yet, will retry/, 20_000);
      a.kill("SIGKILL");
      await a.exit;
      await waitFor(async () => (await jsons(dirB)).length >= 10, 30_000, "all 10 segments with B");
      await new Promise((r) => setTimeout(r, 1000));
      await assertStoredOnce(dirB, segs);
      if (label === "Redis") {
        assert.ok(b.stderr.concat(b.stdout).some((l) => /took over/.test(l)), "B took over");
      }
      b.kill("SIGTERM");
      assert.equal(await b.exit, 0);
    } finally {
      await a?.stop();
      await b?.stop();
      await be.stop();
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("dumper on a Redis Cluster: the master holding the topic's stream is killed mid-run; the dumper stays up and stores every segment once", async () => {
  const c = await startRedisCluster();
  const bus = await connectBus(selectBus({ busUrl: c.url, env: () => undefined }), quiet(), { name: "t" });
  const dir = await Deno.makeTempDir();
  const segs = await segments(20);
  let node: NodeProcess | undefined;
  try {
    const cluster = (bus as RedisClusterBackend).cluster;
    const slot = Number(await cluster.call("CLUSTER", "KEYSLOT", clusterStreamKey(TOPIC)));
    const slots = await cluster.call("CLUSTER", "SLOTS") as [number, number, [string, number]][];
    const owner = slots.find(([lo, hi]) => lo <= slot && slot <= hi)?.[2][1];
    assert.ok(owner !== undefined, "the slot's master");
    await bus.segments.append(TOPIC, encodeMessage(segs[0]), CAPS);
    node = dumper(c.env, "video_dumper", dir);
    await node.waitForLine(/from its durable stream as consumer group video_dumper/, 30_000);
    for (let i = 1; i < segs.length; i++) {
      if (i === 8) await c.kill(Number(owner));
      // A producer retries an append that failed during the failover (as the aggregator does).
      for (let tries = 0;; tries++) {
        try {
          await bus.segments.append(TOPIC, encodeMessage(segs[i]), CAPS);
          break;
        } catch (err) {
          if (tries > 100) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor(async () => (await jsons(dir)).length >= segs.length, 60_000, "all 20 segments on disk");
    await new Promise((r) => setTimeout(r, 1000));
    await assertStoredOnce(dir, segs);
    node.kill("SIGTERM");
    assert.equal(await node.exit, 0, "the dumper never exited on its own: it stopped on SIGTERM");
  } finally {
    await node?.stop();
    await bus.close();
    await c.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

for (const [label, start] of [["NATS", nats], ["a Redis Cluster", cluster]] as const) {
  Deno.test(`pipeline on ${label}: camera → rtsp → aggregator → dumper; the dumper's files are the aggregator's segments, each once`, async () => {
    const be = await start();
    const cam = await startRtspServer({
      source: "synthetic",
      width: 320,
      height: 240,
      fps: 10,
      path: "/pipe.stream",
    });
    const dir = await Deno.makeTempDir();
    const nodes: NodeProcess[] = [];
    try {
      const chain = await startChain(be.env, { sensor: "cam", cameraUrl: cam.url, dir }, nodes);
      await waitFor(async () => (await jsons(dir)).length >= 3, 60_000, "3 segments on disk");
      assert.ok(chain.rtsp.stderr.some((l) => /frames go on plain pub\/sub only/.test(l)));
      assert.ok(chain.aggregator.stderr.some((l) => /frames come over plain pub\/sub/.test(l)));
      assert.ok(await stopChain(chain) >= 3);
    } finally {
      for (const n of nodes) await n.stop();
      await cam.stop();
      await be.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
