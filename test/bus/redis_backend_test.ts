import assert from "node:assert/strict";
import { startRedis } from "../helpers/redis_server.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { consumeDurable } from "../../src/bus/durable_loop.ts";
import { selectBus } from "../../src/bus/select.ts";
import type { Bus } from "../../src/bus/types.ts";
import { Logger } from "../../src/runtime/log.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
const payload = (i: number) => new Uint8Array([0xff, i, 0x00, i]);

Deno.test("redis backend: two members of a group share the stream, each entry once; a dead member's entry is claimed", async () => {
  const redis = await startRedis();
  const buses: Bus[] = [];
  const open = async () => {
    const b = await connectBus(selectBus({ busUrl: redis.url, env: () => undefined }), log, {
      publisher: true,
    });
    buses.push(b);
    return b;
  };
  try {
    const prod = await open();
    const caps = { maxLen: 1000, maxAgeS: 0 };
    for (let i = 0; i < 12; i++) {
      await prod.segments.append(
        "aggregated_video",
        [payload(i).subarray(0, 2), payload(i).subarray(2)],
        caps,
      );
    }
    assert.equal(await prod.segments.isAnnounced("aggregated_video"), true);
    const opts = (consumer: string) => ({ group: "video_dumper", consumer, log, claimIdleMs: 1000 });
    // A member reads one entry and dies without acknowledging it.
    const dying = (await open()).segments.consumer("aggregated_video", opts("dead"));
    const [held] = await dying.read(1, 100);
    assert.ok(held);
    await dying.close();

    const stored = new Map<number, number>();
    const ctl = new AbortController();
    const members = await Promise.all(["m0", "m1"].map(async (name) => {
      const c = (await open()).segments.consumer("aggregated_video", opts(name));
      const run = consumeDurable(c, (e) => {
        assert.equal(e.bytes.length, 4);
        stored.set(e.bytes[1], (stored.get(e.bytes[1]) ?? 0) + 1);
        if (stored.size === 12) ctl.abort();
        return new Promise((r) => setTimeout(r, 20));
      }, { signal: ctl.signal, log, claimIdleMs: 1000, blockMs: 200, batch: 2 });
      return { c, run };
    }));
    const timer = setTimeout(() => ctl.abort(), 20_000);
    const stats = await Promise.all(members.map((m) => m.run));
    clearTimeout(timer);
    assert.deepEqual([...stored.keys()].sort((x, y) => x - y), [...Array(12).keys()], "every entry stored");
    assert.ok([...stored.values()].every((n) => n === 1), `once each: ${JSON.stringify([...stored])}`);
    assert.ok(stats[0].acked > 0 && stats[1].acked > 0, `shared: ${stats[0].acked}/${stats[1].acked}`);
    assert.ok(stored.has(held.bytes[1]));
    assert.equal(members.reduce((n, m) => n + m.c.claimed, 0), 1, "the dead member's entry was claimed");
    for (const m of members) await m.c.close();
  } finally {
    for (const b of buses) await b.close();
    await redis.stop();
  }
});

Deno.test("redis backend: a failed handler leaves the entry to be delivered again, then it is acknowledged", async () => {
  const redis = await startRedis();
  const bus = await connectBus(selectBus({ busUrl: redis.url, env: () => undefined }), log);
  try {
    await bus.segments.append("t", payload(1), { maxLen: 10, maxAgeS: 0 });
    const c = bus.segments.consumer("t", { group: "g", consumer: "g", log });
    const ctl = new AbortController();
    let tries = 0;
    const errors: unknown[] = [];
    const stats = await consumeDurable(c, () => {
      if (++tries < 3) return Promise.reject(new Error("disk full"));
      ctl.abort();
      return Promise.resolve();
    }, { signal: ctl.signal, log, retryMs: 50, blockMs: 100, onError: (e) => errors.push(e) });
    assert.equal(tries, 3);
    assert.deepEqual(stats, { acked: 1, failed: 2 });
    assert.equal(errors.length, 2);
    assert.deepEqual(await c.read(10, 50), [], "acknowledged: not delivered again");
    await c.close();
  } finally {
    await bus.close();
    await redis.stop();
  }
});
