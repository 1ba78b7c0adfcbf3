import assert from "node:assert/strict";
import { startNode } from "../helpers/process.ts";
import { startRedis } from "../helpers/redis_server.ts";

Deno.test("node: MSIGHT_PUBSUB_BACKEND=kafka and a back end the nodes do not run on yet exit 2 with one line", async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { MSIGHT_PUBSUB_BACKEND: "kafka" },
      /the Kafka back end is not supported yet; supported back ends: redis/,
    ],
    [
      { MSIGHT_PUBSUB_BACKEND: "nats" },
      /the nats bus \(nats:\/\/localhost:4222\) is not available to the nodes yet/,
    ],
    [{ MSIGHT_BUS_URL: "mqtt://h" }, /MSIGHT_BUS_URL "mqtt:\/\/h" is invalid: expected a redis:\/\//],
  ];
  for (const [env, re] of cases) {
    const node = startNode("nodes/echo.ts", ["-st", "t"], { ...env, MSIGHT_EDGE_DEVICE_NAME: "d" });
    assert.equal(await node.exit, 2, JSON.stringify(env));
    const lines = node.stderr.filter((l) => l.trim());
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], re);
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
