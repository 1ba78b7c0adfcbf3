import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { startProcess } from "../helpers/process.ts";
import { waitFor } from "../helpers/net.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { consumeDurable } from "../../src/bus/durable_loop.ts";
import { clusterStreamKey, type RedisClusterBackend } from "../../src/bus/redis_cluster/mod.ts";
import { selectBus } from "../../src/bus/select.ts";
import { Logger } from "../../src/runtime/log.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
const payload = (i: number) => new Uint8Array([0xff, i, 0x00, i, 0x0d, 0x0a]);

Deno.test("redis cluster: frames by classic PUBLISH reach MSight's RedisCluster client and a subscriber on any node; the registry is in MSIGHT:NODES", async () => {
  const cluster = await startRedisCluster();
  // MSight's variables, the node list as a Python list literal.
  const env: Record<string, string> = {
    MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "true",
    MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES: `['127.0.0.1:${cluster.ports[0]}', '127.0.0.1:${
      cluster.ports[1]
    }']`,
  };
  const pub = await connectBus(selectBus({ env: (k) => env[k] }), log, { name: "pub" });
  const sub = await connectBus(selectBus({ busUrl: cluster.url, env: () => undefined }), log, {
    name: "sub",
  });
  // A plain client on the last node (a replica), as one of MSight's nodes might be connected.
  const raw = new Redis({ host: "127.0.0.1", port: cluster.ports[5] });
  try {
    assert.equal(pub.kind, "redis-cluster");
    const got: number[] = [], gotRaw: Buffer[] = [];
    await sub.subscribe("rtsp_topic", (m) => got.push(m[1]));
    await raw.subscribe("rtsp_topic");
    raw.on("messageBuffer", (_c: Buffer, m: Buffer) => gotRaw.push(m));
    for (let i = 0; i < 20; i++) {
      assert.ok(await pub.publish("rtsp_topic", [payload(i).subarray(0, 3), payload(i).subarray(3)]) >= 0);
    }
    await waitFor(() => got.length === 20 && gotRaw.length === 20, 10_000, "all frames");
    assert.deepEqual(got, [...Array(20).keys()]);
    assert.deepEqual(new Uint8Array(gotRaw[5]), payload(5));

    // Overlapping publishes (none awaited before the next): sent back to back, each answered, received in order.
    got.length = 0;
    const ids = [...Array(300).keys()];
    const replies = await Promise.all(ids.map((i) => pub.publish("rtsp_topic", payload(i % 256))));
    // A cluster node counts only its own subscribers: 0 is a PUBLISH that was accepted.
    assert.ok(replies.every((n) => n >= 0), `every PUBLISH accepted: ${replies.join(",")}`);
    await waitFor(() => got.length === 300, 10_000, `300 frames (have ${got.length})`);
    assert.deepEqual(got, ids.map((i) => i % 256), "in order");

    await pub.registry.putNode({
      name: "cam1",
      device: "d",
      publish_topic: "rtsp_topic",
      subscribe_topic: null,
      type: "RTSPSourceNode",
      last_heartbeat: 1,
      status: "RUNNING",
    });
    assert.deepEqual((await sub.registry.readNodes()).map((n) => n.name), ["cam1"]);

    // MSight's own way of listening on a cluster (redis-py's RedisCluster, its pubsub): in order and byte-exact.
    const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const warmUp = hex(payload(100)), end = hex(payload(200));
    const msight = startProcess("/usr/bin/python3", [
      new URL("../fixtures/msight-cluster/subscribe.py", import.meta.url).pathname,
      "rtsp_topic",
      end,
    ], env);
    await msight.waitForLine(/^ready$/, 20_000, "stdout");
    // Its SUBSCRIBE reaches the cluster a moment after "ready": publish until it sees one.
    await waitFor(
      async () => {
        await pub.publish("rtsp_topic", payload(100));
        return msight.stdout.length > 1;
      },
      20_000,
      "MSight's subscriber receiving",
    );
    for (const i of [0, 1, 2, 3, 200]) await pub.publish("rtsp_topic", payload(i));
    assert.equal(await msight.exit, 0, msight.stderr.join("\n"));
    const frames = msight.stdout.slice(1).filter((l) => l !== warmUp);
    assert.deepEqual(frames, [0, 1, 2, 3, 200].map((i) => hex(payload(i))));
  } finally {
    raw.disconnect();
    await pub.close();
    await sub.close();
    await cluster.stop();
  }
});

Deno.test("redis cluster: the master holding a topic's stream is killed mid-run; its replica takes over; every segment arrives", async () => {
  const cluster = await startRedisCluster();
  const open = () => connectBus(selectBus({ busUrl: cluster.url, env: () => undefined }), log);
  const prod = await open(), sink = await open();
  const caps = { maxLen: 1000, maxAgeS: 0 };
  const topic = "aggregated_video";
  try {
    // Where the topic's stream lives: the master serving its slot.
    const c = (prod as RedisClusterBackend).cluster;
    const slot = Number(await c.call("CLUSTER", "KEYSLOT", clusterStreamKey(topic)));
    const owner = Number(String(
      (await c.call("CLUSTER", "SLOTS") as [number, number, [string, number]][])
        .find(([lo, hi]) => lo <= slot && slot <= hi)![2][1],
    ));

    const received = new Map<number, number>();
    const ctl = new AbortController();
    const member = sink.segments.consumer(topic, { group: "video_dumper", consumer: "video_dumper", log });
    const reading = consumeDurable(member, (e) => {
      received.set(e.bytes[1], (received.get(e.bytes[1]) ?? 0) + 1);
      return Promise.resolve();
    }, { signal: ctl.signal, log, blockMs: 200, retryMs: 300 });

    let appendErrors = 0;
    for (let i = 0; i < 30; i++) {
      if (i === 10) await cluster.kill(owner);
      // A producer retries an append that failed (as the aggregator does): a segment is published once it is stored.
      for (;;) {
        try {
          await prod.segments.append(topic, payload(i), caps);
          break;
        } catch {
          appendErrors++;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await new Promise((r) => setTimeout(r, 30));
    }
    await waitFor(() => received.size === 30, 30_000, `all 30 segments (have ${received.size})`);
    ctl.abort();
    await reading;
    await member.close();
    assert.deepEqual([...received.keys()].sort((a, b) => a - b), [...Array(30).keys()], "none lost");
    const twice = [...received.values()].filter((n) => n > 1).length;
    // At least once: only an entry whose acknowledgement died with the master may come again.
    assert.ok(twice <= 2, `delivered twice: ${twice}`);
    const nodes = await cluster.cli(cluster.ports.find((p) => p !== owner)!, "CLUSTER", "NODES");
    assert.match(
      nodes,
      new RegExp(`127\\.0\\.0\\.1:${owner}@\\d+ master,fail`),
      "the master was failed over",
    );
    console.log(`failover: ${appendErrors} append retries, ${twice} delivered twice`);
  } finally {
    await prod.close();
    await sink.close();
    await cluster.stop();
  }
});
