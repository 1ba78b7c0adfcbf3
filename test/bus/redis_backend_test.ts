import assert from "node:assert/strict";
import { startRedis } from "../helpers/redis_server.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { consumeDurable } from "../../src/bus/durable_loop.ts";
import { selectBus } from "../../src/bus/select.ts";
import type { Bus } from "../../src/bus/types.ts";
import { Logger } from "../../src/runtime/log.ts";
import { waitFor } from "../helpers/net.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
const payload = (i: number) => new Uint8Array([0xff, i, 0x00, i]);

/** Buses on one Redis, each as a node opens it; `closeAll` closes them in the test's finally. */
function busesOn(url: string, opts: { publisher?: boolean } = {}) {
  const buses: Bus[] = [];
  return {
    open: async (): Promise<Bus> => {
      const b = await connectBus(selectBus({ busUrl: url, env: () => undefined }), log, opts);
      buses.push(b);
      return b;
    },
    closeAll: async () => {
      for (const bus of buses) await bus.close();
    },
  };
}

Deno.test("redis backend: two members of a group share the stream, each entry once; a dead member's entry is claimed", async () => {
  const redis = await startRedis();
  const { open, closeAll } = busesOn(redis.url, { publisher: true });
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
    await closeAll();
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

Deno.test("redis backend: a member that dies before acknowledging gets its entries first on restart; another group sees all", async () => {
  const redis = await startRedis();
  const { open, closeAll } = busesOn(redis.url);
  try {
    const prod = await open();
    const caps = { maxLen: 1000, maxAgeS: 3600 };
    assert.equal(await prod.segments.isAnnounced("aggregated_video"), false);
    for (let i = 0; i < 10; i++) await prod.segments.append("aggregated_video", payload(i), caps);
    const opts = { group: "dumper", consumer: "dumper", log };

    // First run: reads 0..4, acknowledges 0..3, dies holding 4 (as a process killed mid-write).
    const first = (await open()).segments.consumer("aggregated_video", opts);
    const got = await first.read(5, 100);
    assert.deepEqual(got.map((e) => e.bytes[1]), [0, 1, 2, 3, 4]);
    for (const e of got.slice(0, 4)) await first.ack(e);
    await first.close();

    // Restart with the same member name: entry 4 comes back first, then 5..9 and a new one; nothing repeats.
    await prod.segments.append("aggregated_video", payload(10), caps);
    const seen: number[] = [];
    const ctl = new AbortController();
    const again = (await open()).segments.consumer("aggregated_video", opts);
    const stats = await consumeDurable(again, (e) => {
      seen.push(e.bytes[1]);
      if (seen.length === 7) ctl.abort();
      return Promise.resolve();
    }, { signal: ctl.signal, log, blockMs: 100 });
    await again.close();
    assert.deepEqual(seen, [4, 5, 6, 7, 8, 9, 10]);
    assert.equal(stats.acked, 7);

    // A second group (another sink) sees every entry from the start, on its own.
    const other = (await open()).segments.consumer("aggregated_video", { ...opts, group: "pusher" });
    const all: number[] = [];
    for (let tries = 0; all.length < 11 && tries < 50; tries++) {
      for (const e of await other.read(20, 100)) {
        all.push(e.bytes[1]);
        await other.ack(e);
      }
    }
    await other.close();
    assert.deepEqual(all, [...Array(11).keys()]);
  } finally {
    await closeAll();
    await redis.stop();
  }
});

Deno.test("redis backend: a member rides out a Redis restart (stream and group gone) and reads new entries after it", async () => {
  const redis = await startRedis();
  const { open, closeAll } = busesOn(redis.url);
  try {
    const prod = await open();
    const caps = { maxLen: 100, maxAgeS: 0 };
    const seen: number[] = [];
    const errors: unknown[] = [];
    const ctl = new AbortController();
    const c = (await open()).segments.consumer("v", { group: "g", consumer: "g", log });
    const run = consumeDurable(c, (e) => Promise.resolve(void seen.push(e.bytes[1])), {
      signal: ctl.signal,
      log,
      blockMs: 200,
      retryMs: 200,
      onError: (e) => errors.push(e),
    });
    await prod.segments.append("v", payload(1), caps);
    await waitFor(() => seen.length === 1, 10_000, "first entry");
    await redis.restart(500);
    // The producer's append fails while Redis is down, then goes through once it is back (empty).
    await waitFor(
      async () => {
        try {
          await prod.segments.append("v", payload(2), caps);
          return true;
        } catch {
          return false;
        }
      },
      20_000,
      "append after restart",
    );
    await waitFor(() => seen.includes(2), 20_000, "entry after restart");
    ctl.abort();
    await run;
    await c.close();
    assert.deepEqual(seen, [1, 2]);
    assert.ok(errors.length >= 1, "the outage was reported");
  } finally {
    await closeAll();
    await redis.stop();
  }
});
