import assert from "node:assert/strict";
import { DENO, startNode, startProcess } from "../helpers/process.ts";
import { startNats } from "../helpers/nats_server.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { selectBus } from "../../src/bus/select.ts";
import { Logger } from "../../src/runtime/log.ts";
import { startRedis } from "../helpers/redis_server.ts";

Deno.test("node: MSIGHT_PUBSUB_BACKEND=kafka and a bad bus URL exit 2 with one line", async () => {
  const echo = ["nodes/echo.ts", "-st", "t"];
  const web = ["nodes/web.ts", "-n", "w"];
  const cases: [Record<string, string>, string[], RegExp][] = [
    [
      { MSIGHT_PUBSUB_BACKEND: "kafka" },
      echo,
      /the Kafka back end is not supported yet; supported back ends: redis/,
    ],
    [
      { MSIGHT_PUBSUB_BACKEND: "kafka" },
      web,
      /the Kafka back end is not supported yet; supported back ends: redis/,
    ],
    [{ MSIGHT_BUS_URL: "mqtt://h" }, echo, /MSIGHT_BUS_URL "mqtt:\/\/h" is invalid: expected a redis:\/\//],
  ];
  for (const [env, [script, ...args], re] of cases) {
    const node = startNode(script, args, { ...env, MSIGHT_EDGE_DEVICE_NAME: "d" });
    assert.equal(await node.exit, 2, JSON.stringify(env));
    const lines = node.stderr.filter((l) => l.trim());
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], re);
  }
});

Deno.test("node: echo runs on NATS (MSIGHT_PUBSUB_BACKEND=nats) and prints what arrives on the topic's subject", async () => {
  const nats = await startNats();
  const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
  const bus = await connectBus(selectBus({ env: (k) => nats.env[k] }), log);
  const node = startNode("nodes/echo.ts", ["-st", "t"], nats.env);
  try {
    await node.waitForLine(/listening on t/, 20_000);
    assert.ok(
      node.stderr.some((l) => /started on device test-device \(NATS nats:\/\/127\.0\.0\.1:\d+\)/.test(l)),
    );
    const frame = await Deno.readFile("test/fixtures/msight-wire/video.msgpack");
    await bus.publish("t", frame);
    await node.waitForLine(/VideoData/, 10_000, "stdout");
  } finally {
    node.kill("SIGTERM");
    assert.equal(await node.exit, 0);
    await bus.close();
    await nats.stop();
  }
});

Deno.test("node: --bus-url redis://... picks the Redis the node runs on", async () => {
  const redis = await startRedis();
  const node = startNode("nodes/echo.ts", ["-st", "t", "--bus-url", redis.url], {
    REDIS_URL: "redis://127.0.0.1:1/0", // would be refused: the bus URL wins
    MSIGHT_EDGE_DEVICE_NAME: "d",
  });
  try {
    await node.waitForLine(/started on device d/, 20_000);
    assert.ok(
      node.stderr.some((l) => l.includes(`Redis redis://127.0.0.1:${redis.port}/0`)),
      node.stderr.join("\n"),
    );
  } finally {
    node.kill("SIGTERM");
    assert.equal(await node.exit, 0);
    await redis.stop();
  }
});

Deno.test("status: with NATS alone it reads the registry from JetStream KV", async () => {
  const nats = await startNats();
  const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
  const bus = await connectBus(selectBus({ env: (k) => nats.env[k] }), log);
  try {
    await bus.registry.putNode({
      name: "cam1",
      device: "edge-1",
      publish_topic: "rtsp_topic",
      subscribe_topic: null,
      type: "RTSPSourceNode",
      last_heartbeat: Date.now() / 1000,
      status: "RUNNING",
    });
    await bus.registry.registerTopic({ name: "rtsp_topic", description: null, data_type: "ImageData" });
    const st = startProcess(DENO, ["run", "-A", "nodes/status.ts", "--json"], nats.env);
    assert.equal(await st.exit, 0, st.stderr.join("\n"));
    const out = JSON.parse(st.stdout.join("\n")) as { nodes: { name: string }[]; topics: { name: string }[] };
    assert.deepEqual(out.nodes.map((n) => n.name), ["cam1"]);
    assert.deepEqual(out.topics.map((t) => t.name), ["rtsp_topic"]);
    const table = startProcess(DENO, ["run", "-A", "nodes/status.ts"], nats.env);
    assert.equal(await table.exit, 0);
    assert.match(
      table.stdout[0],
      /^nats:\/\/127\.0\.0\.1:\d+ \(registry nats:\/\/127\.0\.0\.1:\d+\): 1 node\(s\), 1 topic\(s\)/,
    );
  } finally {
    await bus.close();
    await nats.stop();
  }
});
