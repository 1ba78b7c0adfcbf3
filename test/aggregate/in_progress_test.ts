import assert from "node:assert/strict";
import { inProgressKey, InProgressMarks } from "../../src/aggregate/in_progress.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { Logger } from "../../src/runtime/log.ts";
import { waitFor } from "../helpers/net.ts";
import { startRedis } from "../helpers/redis_server.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });

Deno.test("in-progress marks: a run's open segments are what the next run reports as lost, once", async () => {
  const redis = await startRedis();
  const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, { name: "marks" });
  try {
    const key = inProgressKey("agg");
    const run1 = new InProgressMarks(bus, "agg");
    assert.deepEqual(await run1.takeLeftovers(), [], "nothing before the first run");
    const before = Date.now() / 1000;
    run1.opened("cam_a\u00000", "cam_a");
    run1.opened("cam_a\u00001", "cam_a");
    run1.opened("cam_b\u00000", "cam_b");
    run1.done("cam_a\u00000"); // published
    // The notes are written without waiting (the frame path must not wait on Redis).
    await waitFor(async () => Object.keys(await bus.readHash(key)).length === 2, 5_000, "two notes");
    // A note that is not ours is skipped, not fatal.
    await bus.setField(key, "junk", "not json");

    // Run 1 is killed here. Run 2 (another aggregator name is another hash) finds what run 1 left open.
    assert.deepEqual(await new InProgressMarks(bus, "other").takeLeftovers(), []);
    const lost = await new InProgressMarks(bus, "agg").takeLeftovers();
    assert.deepEqual(lost.map((l) => l.sensor).sort(), ["cam_a", "cam_b"]);
    for (const l of lost) assert.ok(l.openedAt >= before - 1 && l.openedAt <= Date.now() / 1000 + 1);
    assert.deepEqual(await bus.readHash(key), {}, "taken: the next run starts clean");
    assert.deepEqual(await new InProgressMarks(bus, "agg").takeLeftovers(), []);
  } finally {
    await bus.close();
    await redis.stop();
  }
});

Deno.test("in-progress marks: with Redis down, notes are skipped and leftovers are empty, without throwing", async () => {
  const redis = await startRedis();
  const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, { name: "marks-down" });
  try {
    await redis.stop();
    await waitFor(() => Promise.resolve(!bus.ready), 5_000, "the bus to notice");
    const marks = new InProgressMarks(bus, "agg");
    marks.opened("cam\u00000", "cam");
    marks.done("cam\u00000");
    assert.deepEqual(await marks.takeLeftovers(), []);
  } finally {
    await bus.close();
  }
});
