import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectGuarded } from "../../src/bus/nats/transport.ts";
import { Redis } from "ioredis";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNats, startNatsCluster, type TestNats } from "../helpers/nats_server.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { waitFor } from "../helpers/net.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { consumeDurable } from "../../src/bus/durable_loop.ts";
import { NatsBackend } from "../../src/bus/nats/mod.ts";
import { segmentBucketName, segmentStreamName } from "../../src/bus/nats/names.ts";
import { TOPICS_BUCKET } from "../../src/bus/nats/registry.ts";
import { NODES_KEY } from "../../src/bus/registry.ts";
import { selectBus } from "../../src/bus/select.ts";
import type { Bus, DurableEntry } from "../../src/bus/types.ts";
import { FatalError } from "../../src/runtime/errors.ts";
import { Logger } from "../../src/runtime/log.ts";

function capturingLog(level: "DEBUG" | "INFO" | "CRITICAL" = "INFO"): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger({ device: "t", node: "t", level, sink: (l) => lines.push(l) }), lines };
}

async function natsBus(nats: TestNats, log: Logger, env: Record<string, string> = {}): Promise<Bus> {
  return await connectBus(selectBus({ busUrl: nats.url, env: (k) => env[k] }), log, { name: "t" });
}

/** Distinct bytes per index, binary on purpose (0xff, 0x00). */
const payload = (i: number, size = 16) => {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k * 7) & 0xff;
  b[0] = 0xff;
  b[1] = i;
  return b;
};

Deno.test("nats: messages go on the topic's own subject (as MSight's NATSPubSub); a queue group shares them", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const pub = await natsBus(nats, log), a = await natsBus(nats, log), b = await natsBus(nats, log);
  const all = await natsBus(nats, log);
  // A plain NATS client, as MSight's nodes are: the subject is the topic name, the payload the bytes as sent.
  const raw = await connectGuarded({ servers: nats.url });
  try {
    const got = { a: [] as number[], b: [] as number[], all: [] as number[], raw: [] as Uint8Array[] };
    await a.subscribe("rtsp_topic", (m) => got.a.push(m[1]), { group: "workers" });
    await b.subscribe("rtsp_topic", (m) => got.b.push(m[1]), { group: "workers" });
    await all.subscribe("rtsp_topic", (m) => got.all.push(m[1]));
    const rawSub = raw.subscribe("rtsp_topic", { callback: (_e, m) => void got.raw.push(m.data) });
    await raw.flush();
    for (let i = 0; i < 40; i++) {
      assert.ok((await pub.publish("rtsp_topic", [payload(i).subarray(0, 8), payload(i).subarray(8)])) >= 0);
    }
    await waitFor(
      () => got.all.length === 40 && got.a.length + got.b.length === 40 && got.raw.length === 40,
      10_000,
      "all messages",
    );
    assert.deepEqual(got.all, [...Array(40).keys()]);
    assert.deepEqual(
      [...got.a, ...got.b].sort((x, y) => x - y),
      [...Array(40).keys()],
      "each once in the group",
    );
    assert.ok(got.a.length > 0 && got.b.length > 0, `shared: ${got.a.length}/${got.b.length}`);
    assert.deepEqual(new Uint8Array(got.raw[7]), payload(7), "bytes intact");
    rawSub.unsubscribe();
  } finally {
    await raw.close();
    for (const bus of [pub, a, b, all]) await bus.close();
    await nats.stop();
  }
});

Deno.test("nats: a message over the server's max_payload is not sent, and one line names max_payload", async () => {
  const nats = await startNats({ maxPayload: 64 * 1024 });
  const { log, lines } = capturingLog();
  const bus = await natsBus(nats, log);
  try {
    assert.equal(await bus.publish("rtsp_topic", new Uint8Array(100_000)), -1);
    assert.equal(await bus.publish("rtsp_topic", new Uint8Array(100_000)), -1);
    const said = lines.filter((l) => l.includes("max_payload"));
    assert.equal(said.length, 1, lines.join("\n"));
    assert.match(
      said[0],
      /100000-byte message on rtsp_topic is larger than the NATS server's max_payload \(65536/,
    );
    assert.ok(await bus.publish("rtsp_topic", new Uint8Array(1000)) >= 0, "a small one still goes");
  } finally {
    await bus.close();
    await nats.stop();
  }
});

Deno.test("nats: durable segments: each group gets every one once, large ones through the object store, intact; a restart repeats nothing", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const prod = await natsBus(nats, log), sink = await natsBus(nats, log);
  const caps = { maxLen: 100, maxAgeS: 3600 };
  try {
    assert.equal(await prod.segments.isAnnounced("aggregated_video"), false);
    const sent = [payload(0, 5000), payload(1, 3 * 1024 * 1024 + 17), payload(2, 900_000), payload(3, 10)];
    for (const s of sent) await prod.segments.append("aggregated_video", s, caps);
    assert.equal(await prod.segments.isAnnounced("aggregated_video"), true);

    const drain = async (group: string, n: number) => {
      const got: DurableEntry[] = [];
      const ctl = new AbortController();
      const c = sink.segments.consumer("aggregated_video", { group, consumer: group, log });
      const run = consumeDurable(c, (e) => {
        got.push({ id: e.id, bytes: e.bytes.slice() });
        if (got.length === n) ctl.abort();
        return Promise.resolve();
      }, { signal: ctl.signal, log, blockMs: 1000 });
      const timer = setTimeout(() => ctl.abort(), n === 0 ? 2500 : 15_000);
      const stats = await run;
      clearTimeout(timer);
      await c.close();
      return { got, stats };
    };
    for (const group of ["video_dumper", "video_pusher"]) {
      const { got, stats } = await drain(group, sent.length);
      assert.equal(got.length, sent.length, group);
      assert.equal(stats.acked, sent.length);
      got.forEach((e, i) =>
        assert.ok(
          e.bytes.length === sent[i].length && e.bytes.every((v, k) => v === sent[i][k]),
          `${group} #${i}`,
        )
      );
    }
    const again = await drain("video_dumper", 0);
    assert.equal(again.got.length, 0, "acknowledged segments are not delivered again");
    // One more after the restart: only it arrives.
    await prod.segments.append("aggregated_video", payload(9, 50), caps);
    const next = await drain("video_dumper", 1);
    assert.deepEqual(next.got.map((e) => e.bytes[1]), [9]);
  } finally {
    await prod.close();
    await sink.close();
    await nats.stop();
  }
});

Deno.test("nats: overlapping appends are confirmed in call order and read back in order, in batches; a failed one is thrown to its caller", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const prod = await natsBus(nats, log), sink = await natsBus(nats, log);
  const caps = { maxLen: 1000, maxAgeS: 0 };
  let stopped = false;
  try {
    // 120 frames' worth, two through the object store among them, none awaited before the next is sent.
    const sent = [...Array(120).keys()].map((i) => payload(i, i === 40 || i === 90 ? 1_200_000 : 2000));
    const ids = await Promise.all(sent.map((m) => prod.segments.append("frames", m, caps)));
    const seqs = ids.map(Number);
    assert.ok(seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1), `in call order: ${seqs.join(",")}`);

    const got: DurableEntry[] = [];
    const ctl = new AbortController();
    const c = sink.segments.consumer("frames", { group: "g", consumer: "g", log });
    const timer = setTimeout(() => ctl.abort(), 30_000);
    const stats = await consumeDurable(c, (e) => {
      got.push({ id: e.id, bytes: e.bytes.slice() });
      if (got.length === sent.length) ctl.abort();
      return Promise.resolve();
    }, { signal: ctl.signal, log, batch: 32, blockMs: 1000 });
    clearTimeout(timer);
    assert.deepEqual(got.map((e) => e.id), ids, "every entry once, in order");
    got.forEach((e, i) => assert.ok(e.bytes.every((v, k) => v === sent[i][k]), `entry ${i} intact`));
    assert.equal(stats.acked, sent.length);
    assert.deepEqual(await c.read(32, 1000), [], "all acknowledged");
    await c.close();

    // The server gone: each overlapping append fails to its own caller (none reported stored, none left hanging).
    await nats.stop();
    stopped = true;
    const outcomes = await Promise.allSettled(
      [0, 1, 2].map((i) => prod.segments.append("frames", payload(200 + i), caps)),
    );
    assert.deepEqual(outcomes.map((o) => o.status), ["rejected", "rejected", "rejected"]);
  } finally {
    await prod.close();
    await sink.close();
    if (!stopped) await nats.stop();
  }
});

Deno.test("nats: two members of a group share segments, each stored once; a dead member's segment goes to the other", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const prod = await natsBus(nats, log), busA = await natsBus(nats, log), busB = await natsBus(nats, log);
  const caps = { maxLen: 1000, maxAgeS: 0 };
  const opts = (consumer: string) => ({ group: "video_dumper", consumer, log, claimIdleMs: 1500 });
  try {
    for (let i = 0; i < 12; i++) await prod.segments.append("aggregated_video", payload(i), caps);
    // A takes one entry and dies without acknowledging it (its connection closes under it).
    const dying = busA.segments.consumer("aggregated_video", opts("a"));
    const [held] = await dying.read(1, 1000);
    assert.ok(held);
    await (busA as NatsBackend).link.conn.close();

    const stored = new Map<number, number>();
    const ctl = new AbortController();
    const members = [busB, await natsBus(nats, log)].map((bus, k) => {
      const c = bus.segments.consumer("aggregated_video", opts(`m${k}`));
      const run = consumeDurable(c, (e) => {
        stored.set(e.bytes[1], (stored.get(e.bytes[1]) ?? 0) + 1);
        if (stored.size === 12) ctl.abort();
        return new Promise((r) => setTimeout(r, 20));
      }, { signal: ctl.signal, log, blockMs: 1000 });
      return { bus, c, run };
    });
    const timer = setTimeout(() => ctl.abort(), 20_000);
    const stats = await Promise.all(members.map((m) => m.run));
    clearTimeout(timer);
    for (const m of members) await m.c.close();
    await members[1].bus.close();
    assert.deepEqual([...stored.keys()].sort((x, y) => x - y), [...Array(12).keys()], "every segment stored");
    assert.ok([...stored.values()].every((n) => n === 1), `once each: ${JSON.stringify([...stored])}`);
    assert.ok(stats[0].acked > 0 && stats[1].acked > 0, `shared: ${stats[0].acked}/${stats[1].acked}`);
    assert.ok(stored.has(held.bytes[1]), "the dead member's segment was taken over");
  } finally {
    await prod.close();
    await busA.close();
    await busB.close();
    await nats.stop();
  }
});

Deno.test("nats: with no Redis configured the registry is in JetStream KV; with Redis it stays in MSIGHT:NODES", async () => {
  const nats = await startNats();
  const redis = await startRedis();
  const { log } = capturingLog("CRITICAL");
  const kvBus = await natsBus(nats, log);
  const redisBus = await natsBus(nats, log, { REDIS_URL: redis.url });
  const r = new Redis(redis.port, "127.0.0.1");
  try {
    const node = {
      name: "cam 1/ß",
      device: "d",
      publish_topic: "rtsp_topic",
      subscribe_topic: null,
      type: "RTSPSourceNode",
      last_heartbeat: 1,
      status: "RUNNING" as const,
    };
    for (const bus of [kvBus, redisBus]) {
      await bus.registry.putNode(node);
      assert.deepEqual(await bus.registry.getNode("cam 1/ß"), node);
      assert.deepEqual((await bus.registry.readNodes()).map((n) => n.name), ["cam 1/ß"]);
      await bus.registry.registerTopic({ name: "rtsp_topic", description: null, data_type: "first" });
      await bus.registry.registerTopic({ name: "rtsp_topic", description: null, data_type: "second" });
      assert.deepEqual(
        (await bus.registry.readTopics()).map((t) => t.data_type),
        ["first"],
        "the first stays",
      );
    }
    assert.ok(await r.hget(NODES_KEY, "cam 1/ß"), "in Redis, where msight_status reads it");
    for (const bus of [kvBus, redisBus]) {
      await bus.registry.deleteNode("cam 1/ß");
      assert.equal(await bus.registry.getNode("cam 1/ß"), null);
      assert.deepEqual(await bus.registry.readNodes(), []);
    }
  } finally {
    r.disconnect();
    await kvBus.close();
    await redisBus.close();
    await redis.stop();
    await nats.stop();
  }
});

Deno.test("nats: the KV registry lists each node once, none missing, while heartbeats rewrite the entries during the read", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const reader = await natsBus(nats, log);
  const writer = await natsBus(nats, log);
  const names = Array.from({ length: 30 }, (_, i) => `node_${String(i).padStart(2, "0")}`);
  const entry = (name: string, beat: number) => ({
    name,
    device: "d",
    publish_topic: null,
    subscribe_topic: null,
    type: "EchoNode",
    last_heartbeat: beat,
    status: "RUNNING" as const,
  });
  let beating = true;
  let beats: Promise<void> | undefined;
  try {
    for (const n of names) await writer.registry.putNode(entry(n, 0));
    // Every node beating over and over, as heartbeats do, while the reader lists them (a read through a consumer
    // listed some twice and missed others).
    beats = (async () => {
      for (let beat = 1; beating; beat++) {
        await Promise.all(names.map((n) => writer.registry.putNode(entry(n, beat))));
      }
    })();
    for (let i = 0; i < 20; i++) {
      assert.deepEqual((await reader.registry.readNodes()).map((e) => e.name).sort(), names, `read ${i}`);
    }
    beating = false;
    await beats;
  } finally {
    beating = false;
    // After a failed read: the beats' own error (if any) would only hide the assertion's.
    await beats?.catch(() => {});
    await reader.close();
    await writer.close();
    await nats.stop();
  }
});

Deno.test("nats: credentials never reach the log; a refused login is one fatal line without the password", async () => {
  const nats = await startNats({ user: "edge", pass: "pa55-w0rd-xyz" });
  const { log, lines } = capturingLog("DEBUG");
  try {
    await assert.rejects(
      natsBus(nats, log, { MSIGHT_NATS_USERNAME: "edge", MSIGHT_NATS_PASSWORD: "wrong-secret-abc" }),
      (e: Error) => {
        assert.ok(e instanceof FatalError);
        assert.match(e.message, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+ .*MSIGHT_NATS_USERNAME/);
        assert.ok(!e.message.includes("wrong-secret-abc"));
        return true;
      },
    );
    const bus = await natsBus(nats, log, {
      MSIGHT_NATS_USERNAME: "edge",
      MSIGHT_NATS_PASSWORD: "pa55-w0rd-xyz",
    });
    await nats.restart(300);
    await waitFor(() => bus.ready && lines.some((l) => l.includes("restored")), 15_000, "reconnect");
    assert.ok(await bus.publish("t", new Uint8Array([1])) >= 0);
    await bus.close();
    assert.ok(lines.some((l) => l.includes("NATS connection lost")), lines.join("\n"));
    assert.ok(
      lines.every((l) => !l.includes("pa55-w0rd-xyz") && !l.includes("wrong-secret-abc")),
      lines.join("\n"),
    );
  } finally {
    await nats.stop();
  }
});

Deno.test("nats: a login refused 25 times in a row never ends the process with a late socket error (read ECONNRESET)", async () => {
  // The server resets the refused connection; nats.js drops the socket's listeners before the reset's error event
  // is emitted. Unguarded (src/bus/nats/transport.ts) this ended the process in nearly every try.
  const nats = await startNats({ user: "edge", pass: "right-one" });
  const { log } = capturingLog("CRITICAL");
  try {
    for (let i = 0; i < 25; i++) {
      await assert.rejects(
        natsBus(nats, log, { MSIGHT_NATS_USERNAME: "edge", MSIGHT_NATS_PASSWORD: "wrong" }),
        /Authorization Violation/,
      );
    }
    // The late errors come a tick after the refusal: give them time to arrive before the test ends.
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    await nats.stop();
  }
});

Deno.test("nats: a failed handler gives the segment back at once (not after the ack wait); then it is acknowledged", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const bus = await natsBus(nats, log);
  try {
    await bus.segments.append("t", payload(1), { maxLen: 10, maxAgeS: 0 });
    // An ack wait far longer than the test: only the give-back can bring the segment again in time.
    const c = bus.segments.consumer("t", { group: "g", consumer: "g", log, claimIdleMs: 600_000 });
    const ctl = new AbortController();
    let tries = 0;
    const started = Date.now();
    const stats = await consumeDurable(c, () => {
      if (++tries < 3) return Promise.reject(new Error("disk full"));
      ctl.abort();
      return Promise.resolve();
    }, { signal: ctl.signal, log, retryMs: 50, blockMs: 1000 });
    assert.equal(tries, 3);
    assert.deepEqual(stats, { acked: 1, failed: 2 });
    assert.ok(Date.now() - started < 30_000);
    assert.deepEqual(await c.read(10, 1000), [], "acknowledged: not delivered again");
    await c.close();
  } finally {
    await bus.close();
    await nats.stop();
  }
});

Deno.test("nats: the server killed mid-run and restarted on its store: the group resumes, no segment lost", async () => {
  const nats = await startNats();
  const { log } = capturingLog("CRITICAL");
  const prod = await natsBus(nats, log), sink = await natsBus(nats, log);
  const caps = { maxLen: 100, maxAgeS: 0 };
  const got = new Map<number, number>();
  const ctl = new AbortController();
  const c = sink.segments.consumer("aggregated_video", {
    group: "video_dumper",
    consumer: "d",
    log,
    claimIdleMs: 2000,
  });
  const run = consumeDurable(c, (e) => {
    got.set(e.bytes[1], (got.get(e.bytes[1]) ?? 0) + 1);
    return Promise.resolve();
  }, { signal: ctl.signal, log, blockMs: 500, retryMs: 300 });
  try {
    for (let i = 0; i < 5; i++) await prod.segments.append("aggregated_video", payload(i), caps);
    await waitFor(() => got.size === 5, 10_000, "the first five");
    await nats.restart(500);
    // The producer retries an append that failed while the server was away, as the aggregator does.
    for (let i = 5; i < 10; i++) {
      await waitFor(
        async () => {
          try {
            await prod.segments.append("aggregated_video", payload(i), caps);
            return true;
          } catch {
            return false;
          }
        },
        20_000,
        `append ${i}`,
        200,
      );
    }
    await waitFor(() => got.size === 10, 20_000, `all ten (have ${[...got.keys()]})`);
    // At least once: JetStream writes a consumer's acknowledgements to disk lazily, so a SIGKILL may forget some and
    // they come again (sinks store idempotently); what came after the restart, once.
    assert.ok([5, 6, 7, 8, 9].every((i) => got.get(i) === 1), JSON.stringify([...got]));
  } finally {
    ctl.abort();
    await run;
    await c.close();
    await prod.close();
    await sink.close();
    await nats.stop();
  }
});

Deno.test("nats: what we create in JetStream has 1 replica on a single server, and on a 2-server cluster 2 (not 3), said in one line each", async () => {
  const single = await startNats();
  const pair = await startNatsCluster(2);
  const { log, lines } = capturingLog();
  const buses: Bus[] = [];
  const raw: NatsConnection[] = [];
  try {
    for (const [url, replicas] of [[single.url, 1], [pair.url, 2]] as const) {
      const bus = await connectBus(selectBus({ busUrl: url, env: () => undefined }), log, { name: "t" });
      buses.push(bus);
      await bus.segments.announce("aggregated_video", { maxLen: 10, maxAgeS: 0 });
      await bus.segments.append("aggregated_video", payload(1, 2_000_000), { maxLen: 10, maxAgeS: 0 });
      await bus.registry.registerTopic({ name: "rtsp_topic", description: null, data_type: "d" });
      const nc = await connectGuarded({ servers: url.replace("nats://", "").split(",") });
      raw.push(nc);
      const jsm = await jetstreamManager(nc);
      // The segment stream, the object store of large segments, the registry's bucket.
      const streams = [
        segmentStreamName("aggregated_video"),
        `OBJ_${segmentBucketName("aggregated_video")}`,
        `KV_${TOPICS_BUCKET}`,
      ];
      for (const stream of streams) {
        assert.equal((await jsm.streams.info(stream)).config.num_replicas, replicas, `${url} ${stream}`);
      }
    }
    const fewer = lines.filter((l) => /created with 2 replica\(s\), not 3/.test(l));
    assert.equal(fewer.length, 3, lines.join("\n"));
  } finally {
    for (const nc of raw) await nc.close();
    for (const bus of buses) await bus.close();
    await pair.stop();
    await single.stop();
  }
});
