import assert from "node:assert/strict";
import { REPEAT_WINDOW_MS } from "../../src/runtime/signals.ts";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis } from "../helpers/redis_server.ts";
import { DENO, startNode, startProcess } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { decodeMessage, encodeMessage } from "../../src/bus/wire.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { Logger } from "../../src/runtime/log.ts";
import { type NodeEntry, NODES_KEY, TOPICS_KEY } from "../../src/bus/registry.ts";
import type { ImageData, VideoData } from "../../src/bus/message.ts";

const fixture = (name: string) =>
  Deno.readFile(new URL(`../fixtures/msight-wire/${name}.msgpack`, import.meta.url));
const quietLog = () => new Logger({ device: "t", node: "t", level: "CRITICAL" });

Deno.test("bus: ImageData and VideoData go through a real Redis byte-exact, frame_id intact", async () => {
  const redis = await startRedis();
  const pub = await RedisBus.connect(redisSettingsFromUrl(redis.url), quietLog());
  const sub = await RedisBus.connect(redisSettingsFromUrl(redis.url), quietLog());
  try {
    const got: Uint8Array[] = [];
    await sub.subscribe("cams/north", (b) => got.push(b.slice()));
    const image = decodeMessage(await fixture("image_jpeg")) as ImageData;
    const video = decodeMessage(await fixture("video")) as VideoData;
    assert.equal(await pub.publish("cams/north", encodeMessage(image)), 1);
    assert.equal(await pub.publish("cams/north", encodeMessage(video)), 1);
    await waitFor(() => got.length === 2, 5000, "two messages");
    assert.deepEqual(got[0], await fixture("image_jpeg"));
    const back = decodeMessage(got[1]) as VideoData;
    assert.equal(back.frameId, 7421057266765168641n);
    assert.deepEqual(back.frameIds, video.frameIds);
  } finally {
    await pub.close();
    await sub.close();
    await redis.stop();
  }
});

Deno.test("runtime: a real node registers as MSight does, serves /metrics and /readyz, survives a Redis restart, stops on SIGTERM", async () => {
  const redis = await startRedis();
  const port = freePort();
  const node = startNode("nodes/echo.ts", [
    "-n",
    "echo_t",
    "-st",
    "rtsp_topic",
    "--metrics-port",
    String(port),
    "--heartbeat-update-interval",
    "0.5",
  ], redis.env);
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true, retryStrategy: () => 100 });
  r.on("error", () => {});
  try {
    await node.waitForLine(/listening on rtsp_topic/);
    await r.connect();
    const entry = JSON.parse((await r.hget(NODES_KEY, "echo_t"))!) as NodeEntry;
    assert.deepEqual(Object.keys(entry), [
      "name",
      "device",
      "publish_topic",
      "subscribe_topic",
      "type",
      "last_heartbeat",
      "status",
      "impl",
      "heartbeat_interval_s",
    ]);
    assert.equal(entry.impl, "msight-edge");
    assert.equal(entry.heartbeat_interval_s, 0.5);
    assert.equal(entry.device, "test-device");
    assert.equal(entry.subscribe_topic, "rtsp_topic");
    assert.equal(entry.status, "RUNNING");
    assert.ok(Math.abs(Date.now() / 1000 - entry.last_heartbeat) < 5);

    // Fixtures published as MSight publishes them, plus malformed messages.
    await r.publish("rtsp_topic", Buffer.from(await fixture("image_jpeg")));
    await r.publish("rtsp_topic", Buffer.from(await fixture("video")));
    for (let i = 0; i < 20; i++) {
      await r.publish("rtsp_topic", Buffer.from(crypto.getRandomValues(new Uint8Array(50))));
    }
    await node.waitForLine(
      /^ImageData sensor=test_camera time=2026-01-24T16:28:45.649586Z size=82586 frame_id=7421057263124512769 jpeg 960x1280x3$/,
    );
    await node.waitForLine(/^VideoData sensor=test_camera .* frame_id=7421057266765168641 frames=5$/);

    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    assert.equal(await fetch(`http://127.0.0.1:${port}/healthz`).then((x) => x.text()), "ok\n");
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((x) => x.text());
    assert.match(metrics, /msight_messages_received_total\{topic="rtsp_topic"\} 22/);
    const malformed = [
      ...metrics.matchAll(/msight_messages_malformed_total\{kind="[a-z_]+",topic="rtsp_topic"\} (\d+)/g),
    ]
      .reduce((s, m) => s + Number(m[1]), 0);
    assert.equal(malformed, 20);
    assert.match(metrics, /msight_redis_connected 1/);

    // Redis restarts (empty): the node reconnects, resubscribes and re-registers by itself.
    await redis.restart(700);
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
      10_000,
      "ready again",
    );
    await waitFor(
      async () => (await r.hget(NODES_KEY, "echo_t").catch(() => null)) !== null,
      10_000,
      "re-registered",
    );
    await waitFor(
      async () => {
        await r.publish("rtsp_topic", Buffer.from(await fixture("image_raw"))).catch(() => 0);
        return node.stdout.some((l) => l.startsWith("ImageData") && l.endsWith("raw 2x4x3"));
      },
      10_000,
      "a message after the restart",
    );
    assert.equal(node.exit instanceof Promise, true);

    node.kill("SIGTERM");
    assert.equal(await node.exit, 0);
    assert.equal(await r.hget(NODES_KEY, "echo_t"), null, "unregistered on a graceful stop");
    assert.ok(node.stderr.some((l) => /received SIGTERM: stopping/.test(l)));
    assert.ok(!node.stderr.some((l) => /^\s+at /.test(l)), "no stack trace");
  } finally {
    r.disconnect();
    await node.stop();
    await redis.stop();
  }
});

Deno.test("runtime: status lists our nodes and MSight's, each judged by the rules of its kind, and topics", async () => {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  const now = Date.now() / 1000;
  // Exactly as MSight's Python writes them (json.dumps spacing).
  const msight = (name: string, type: string, pub: string | null, sub: string | null, age: number) =>
    `{"name": "${name}", "device": "jetson", "publish_topic": ${
      pub ? `"${pub}"` : "null"
    }, "subscribe_topic": ${sub ? `"${sub}"` : "null"}, "type": "${type}", "last_heartbeat": ${
      now - age
    }, "status": "RUNNING"}`;
  try {
    // An MSight source beats every 10 frames; its own tolerance is 60 s.
    await r.hset(NODES_KEY, "py_node", msight("py_node", "RTSPSourceNode", "rtsp_topic", null, 42));
    await r.hset(NODES_KEY, "py_dead", msight("py_dead", "RTSPSourceNode", "rtsp_topic", null, 75));
    // An MSight sink beats every 10 messages: ~50 s at buffer 50. MSight's status says RUNNING, and so do we.
    await r.hset(
      NODES_KEY,
      "py_dumper",
      msight("py_dumper", "VideoLocalDumperSinkNode", null, "aggregated_video", 50),
    );
    // Ours beat every --heartbeat-update-interval seconds: 50 s of silence is a dead node.
    await r.hset(
      NODES_KEY,
      "our_dumper",
      JSON.stringify({
        name: "our_dumper",
        device: "edge",
        publish_topic: null,
        subscribe_topic: "aggregated_video",
        type: "VideoLocalDumperSinkNode",
        last_heartbeat: now - 50,
        status: "RUNNING",
        impl: "msight-edge",
        heartbeat_interval_s: 10,
      }),
    );
    await r.hset(
      TOPICS_KEY,
      "rtsp_topic",
      '{"name": "rtsp_topic", "description": null, "data_type": "msight_core.data.image.ImageData"}',
    );
    const st = startProcess(DENO, ["run", "-A", "nodes/status.ts"], redis.env);
    assert.equal(await st.exit, 0, st.stderr.join("\n"));
    const out = st.stdout.join("\n");
    assert.match(out, /py_node\s+RTSPSourceNode\s+jetson\s+RUNNING\s+4[234]\.\d s ago\s+rtsp_topic\s+-/);
    assert.match(out, /py_dead\s+RTSPSourceNode\s+jetson\s+STALE\s+7[456]\.\d s ago/);
    assert.match(out, /py_dumper\s+VideoLocalDumperSinkNode\s+jetson\s+RUNNING\s+(49|50|51)\.\d s ago/);
    assert.match(out, /our_dumper\s+VideoLocalDumperSinkNode\s+edge\s+STALE\s+/);
    assert.match(out, /rtsp_topic\s+msight_core.data.image.ImageData/);
    const js = startProcess(DENO, ["run", "-A", "nodes/status.ts", "--json"], redis.env);
    assert.equal(await js.exit, 0);
    const parsed = JSON.parse(js.stdout.join("\n"));
    const byName = new Map<string, { judged: string; heartbeat_age_s: number }>(
      parsed.nodes.map((n: { name: string; judged: string; heartbeat_age_s: number }) => [n.name, n]),
    );
    assert.ok(byName.get("py_node")!.heartbeat_age_s > 40);
    assert.deepEqual(
      ["py_node", "py_dead", "py_dumper", "our_dumper"].map((n) => byName.get(n)!.judged),
      ["RUNNING", "STALE", "RUNNING", "STALE"],
    );
  } finally {
    r.disconnect();
    await redis.stop();
  }
});

Deno.test("runtime: bad flags exit 2 and unreachable Redis exits 1, each with one line and no stack", async () => {
  const bad = startNode("nodes/echo.ts", ["-st", "t", "--rtae"], { REDIS_URL: "redis://127.0.0.1:1/0" });
  assert.equal(await bad.exit, 2);
  assert.deepEqual(bad.stderr.filter((l) => l.trim()), [
    "echo: unrecognized argument --rtae (did you mean --rate?)",
  ]);

  const port = freePort();
  const down = startNode("nodes/echo.ts", ["-st", "t", "--redis-connect-timeout", "1"], {
    REDIS_URL: `redis://127.0.0.1:${port}/0`,
    MSIGHT_EDGE_DEVICE_NAME: "d",
  });
  assert.equal(await down.exit, 1);
  const lines = down.stderr.filter((l) => l.trim());
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0], /CRITICAL :: cannot reach Redis at redis:\/\/127.0.0.1:\d+\/0 \(ECONNREFUSED\)/);

  const st = startProcess(DENO, ["run", "-A", "nodes/status.ts"], {
    REDIS_URL: `redis://:pw123@127.0.0.1:${port}/0`,
  });
  assert.equal(await st.exit, 1);
  assert.equal(st.stderr.length, 1);
  assert.ok(!st.stderr[0].includes("pw123"));
});

Deno.test("runtime: a second SIGTERM during a graceful stop (a second after the first) exits at once", async () => {
  const redis = await startRedis();
  const spool = await Deno.makeTempDir();
  const deadS3 = freePort(); // nothing listens: uploads can only wait
  const node = startNode("nodes/pusher.ts", [
    "-n",
    "p2",
    "-st",
    "v",
    "--bucket-name",
    "b",
    "--endpoint-url",
    `http://127.0.0.1:${deadS3}`,
    "--spool-dir",
    spool,
    "--transport",
    "pubsub",
    "--drain-timeout",
    "60",
  ], { ...redis.env, AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", AWS_EC2_METADATA_DISABLED: "true" });
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    await node.waitForLine(/reading v over plain pub\/sub/, 30_000);
    const { makeSegment } = await import("../helpers/segments.ts");
    await r.publish("v", Buffer.from(encodeMessage(await makeSegment("cam", 1769272125))));
    await node.waitForLine(/queued .* for upload/);
    node.kill("SIGTERM");
    await node.waitForLine(/uploading the 1 segment\(s\) in the outbox for up to 60 s/);
    // A repeat within REPEAT_WINDOW_MS of the first is the same signal delivered twice (src/runtime/signals.ts).
    await new Promise((r) => setTimeout(r, REPEAT_WINDOW_MS + 200));
    const t0 = Date.now();
    node.kill("SIGTERM");
    assert.equal(await node.exit, 143);
    // "At once" against the 60 s drain, with room for a loaded machine.
    assert.ok(Date.now() - t0 < 15_000, "exited at once");
    assert.ok(node.stderr.some((l) => /received SIGTERM again: exiting now/.test(l)));
  } finally {
    r.disconnect();
    await node.stop();
    await redis.stop();
    await Deno.remove(spool, { recursive: true });
  }
});
