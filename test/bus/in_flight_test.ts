import assert from "node:assert/strict";
import { InFlightWindow } from "../../src/bus/in_flight.ts";

/** A request whose reply the test gives by hand. */
function requests() {
  const started: number[] = [];
  const replies = new Map<number, { resolve: (v: number) => void; reject: (e: Error) => void }>();
  const send = (i: number) => () => {
    started.push(i);
    return new Promise<number>((resolve, reject) => replies.set(i, { resolve, reject }));
  };
  return { started, replies, send };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("in-flight window: at most `size` sent at once, in call order; each caller gets its own reply", async () => {
  const w = new InFlightWindow(3);
  const { started, replies, send } = requests();
  const calls = [0, 1, 2, 3, 4, 5].map((i) => w.run(send(i)));
  assert.deepEqual(started, [0, 1, 2], "the first three go out at once, synchronously");
  assert.equal(w.inFlight, 3);
  assert.equal(w.waiting, 3);
  replies.get(1)!.resolve(10);
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3], "room for one more: the next in line");
  // A newcomer waits behind those already waiting.
  replies.get(0)!.resolve(0);
  const late = w.run(send(6));
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  for (const i of [2, 3, 4]) replies.get(i)!.resolve(i * 10);
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6]);
  replies.get(5)!.resolve(50);
  replies.get(6)!.resolve(60);
  assert.deepEqual(await Promise.all([...calls, late]), [0, 10, 20, 30, 40, 50, 60]);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(w.inFlight, 0);
});

Deno.test("in-flight window: a failed request fails its own caller only, and frees its slot", async () => {
  const w = new InFlightWindow(1);
  const { started, replies, send } = requests();
  const a = w.run(send(0)), b = w.run(send(1));
  const thrown = w.run(() => {
    throw new Error("refused before sending");
  });
  replies.get(0)!.reject(new Error("connection lost"));
  await assert.rejects(a, /connection lost/);
  await tick();
  assert.deepEqual(started, [0, 1]);
  replies.get(1)!.resolve(1);
  assert.equal(await b, 1);
  await assert.rejects(thrown, /refused before sending/);
  assert.equal(w.inFlight, 0);
});

Deno.test("in-flight window: an exclusive request waits for those before it and holds those after", async () => {
  const w = new InFlightWindow(4);
  const { started, replies, send } = requests();
  const before = [w.run(send(0)), w.run(send(1))];
  const big = w.run(send(2), true);
  const after = w.run(send(3));
  assert.deepEqual(started, [0, 1]);
  replies.get(0)!.resolve(0);
  await tick();
  assert.deepEqual(started, [0, 1], "still one before it in flight");
  replies.get(1)!.resolve(1);
  await tick();
  assert.deepEqual(started, [0, 1, 2]);
  replies.get(2)!.resolve(2);
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3]);
  replies.get(3)!.resolve(3);
  assert.deepEqual(await Promise.all([...before, big, after]), [0, 1, 2, 3]);
  assert.throws(() => new InFlightWindow(0), /window size 0: expected at least 1/);
});
