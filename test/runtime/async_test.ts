// Unit tests of the one abortable delay and the one backoff every retry loop uses.
import assert from "node:assert/strict";
import { Backoff, delay } from "../../src/runtime/async.ts";
import { seededRandom } from "../helpers/random.ts";

Deno.test("delay: waits about its time; an abort ends it at once and leaves no timer", async () => {
  let t = performance.now();
  await delay(50);
  assert.ok(performance.now() - t >= 45, "waited");

  const stop = new AbortController();
  t = performance.now();
  const waiting = delay(60_000, stop.signal);
  setTimeout(() => stop.abort(), 20);
  await waiting; // a leaked 60 s timer would also fail Deno's sanitizer
  assert.ok(performance.now() - t < 30_000, "ended by the abort, not the timer");

  t = performance.now();
  await delay(60_000, stop.signal); // already aborted: resolves at once
  assert.ok(performance.now() - t < 30_000);
});

Deno.test("delay: the abort listener is removed once it resolves", async () => {
  const stop = new AbortController();
  let listeners = 0;
  const add = stop.signal.addEventListener.bind(stop.signal);
  const remove = stop.signal.removeEventListener.bind(stop.signal);
  stop.signal.addEventListener = ((...a: Parameters<typeof add>) => (listeners++, add(...a))) as typeof add;
  stop.signal.removeEventListener =
    ((...a: Parameters<typeof remove>) => (listeners--, remove(...a))) as typeof remove;
  for (let i = 0; i < 5; i++) await delay(1, stop.signal);
  assert.equal(listeners, 0);
});

Deno.test("Backoff: grows by its factor to the cap, resets", () => {
  const b = new Backoff({ initial: 0.5, max: 30, jitter: 0 });
  assert.deepEqual(Array.from({ length: 9 }, () => b.next()), [0.5, 1, 2, 4, 8, 16, 30, 30, 30]);
  assert.equal(b.failures, 9);
  b.reset();
  assert.equal(b.failures, 0);
  assert.equal(b.next(), 0.5);
  const three = new Backoff({ initial: 100, max: 10_000, factor: 3, jitter: 0 });
  assert.deepEqual([three.next(), three.next(), three.next()], [100, 300, 900]);
  assert.equal(three.atCap(), 10_000, "atCap skips to the largest delay");
  assert.equal(three.failures, 4, "and counts a failure");
});

Deno.test("Backoff: jitter stays within ±jitter of each step and never above the cap", () => {
  const j = new Backoff({ initial: 1, max: 30, jitter: 0.2, random: seededRandom(3) });
  const seen: number[] = [];
  for (let i = 0; i < 12; i++) {
    const base = Math.min(30, 2 ** i);
    const d = j.next();
    seen.push(d / base);
    assert.ok(d >= base * 0.8 - 1e-9 && d <= Math.min(30, base * 1.2) + 1e-9, `${i}: ${d}`);
  }
  assert.ok(new Set(seen).size > 1, "the spread varies between attempts");
  // The extremes of the random source map to the edges of the spread.
  assert.equal(new Backoff({ initial: 10, max: 100, random: () => 0 }).next(), 8);
  assert.equal(new Backoff({ initial: 10, max: 100, random: () => 0.999999 }).next().toFixed(3), "12.000");
  assert.equal(new Backoff({ initial: 100, max: 100, random: () => 0.999999 }).next(), 100);
  const cap = new Backoff({ initial: 1, max: 60, random: () => 0 });
  assert.equal(cap.atCap(), 48);
});
