/**
 * `deno task bench bus`: 1280×960 JPEG frames (the fixture) from one publisher to one subscriber through each back
 * end of `src/bus/` (standalone Redis, Redis Cluster of 3 masters + 3 replicas, core NATS, and JetStream's durable
 * path), on private servers on this machine: as fast as possible (frames/s, MB/s, and CPU per frame of the servers
 * and of this process, which is both publisher and subscriber) and paced at 100 frames/s (publish-to-receive latency
 * p50/p99). Same code for every back end, through the `Bus` interface. As fast as possible, the publisher keeps up
 * to {@linkcode SEND_WINDOW} frames in flight, awaited in order (a back end whose publish or append waits for a
 * reply pipelines them; one that resolves on write is unaffected); paced, it awaits each frame before the next.
 *
 * @module
 */

import { startNats } from "../test/helpers/nats_server.ts";
import { startRedis } from "../test/helpers/redis_server.ts";
import { startRedisCluster } from "../test/helpers/redis_cluster.ts";
import { loadFrames } from "../test/helpers/media.ts";
import { connectBus } from "../src/bus/connect.ts";
import { consumeDurable } from "../src/bus/durable_loop.ts";
import { selectBus } from "../src/bus/select.ts";
import type { Bus } from "../src/bus/types.ts";
import { Logger } from "../src/runtime/log.ts";
import { cpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const log = new Logger({ device: "bench", node: "bench", level: "CRITICAL" });
const BURST = 400, PACED_S = 4, PACED_FPS = 100;
/** Frames a publisher has in flight at most, as fast as possible. */
const SEND_WINDOW = 32;

/** CPU seconds of this process alone (utime + stime; not the children it reaped). */
function ownCpu(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** CPU seconds of the live servers this process started (its children, by parent pid). */
function serverCpu(): number {
  let total = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === Deno.pid) {
        total += cpuSeconds(+e.name);
      }
    } catch {
      // The process ended while /proc was listed: nothing to count.
    }
  }
  return total;
}

/** A frame tagged with its index in its first 4 bytes (inside the JPEG's bytes: only the size matters here). */
function tagged(jpeg: Uint8Array, i: number): Uint8Array {
  const b = jpeg.slice();
  new DataView(b.buffer).setUint32(0, i);
  return b;
}

const percentile = (xs: number[], p: number) =>
  xs.slice().sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];

interface Carrier {
  send(bytes: Uint8Array): Promise<void>;
  /** Starts receiving; `onFrame` gets each frame's index. */
  receive(onFrame: (i: number) => void): Promise<() => Promise<void>>;
}

function pubsub(pub: Bus, sub: Bus, topic: string): Carrier {
  return {
    async send(bytes) {
      if ((await pub.publish(topic, bytes)) < 0) throw new Error("not sent");
    },
    async receive(onFrame) {
      const h = (m: Uint8Array) => onFrame(new DataView(m.buffer, m.byteOffset).getUint32(0));
      await sub.subscribe(topic, h);
      return () => sub.unsubscribe(topic, h);
    },
  };
}

function durable(pub: Bus, sub: Bus, topic: string): Carrier {
  const caps = { maxLen: 2000, maxAgeS: 600 };
  return {
    async send(bytes) {
      await pub.segments.append(topic, bytes, caps);
    },
    async receive(onFrame) {
      await pub.segments.announce(topic, caps);
      const c = sub.segments.consumer(topic, { group: "bench", consumer: "bench", log, start: "new" });
      const ctl = new AbortController();
      const run = consumeDurable(c, (e) => {
        onFrame(new DataView(e.bytes.buffer, e.bytes.byteOffset).getUint32(0));
        return Promise.resolve();
      }, { signal: ctl.signal, log, blockMs: 200, batch: 32 });
      await new Promise((r) => setTimeout(r, 500)); // the group exists before the first frame
      return async () => {
        ctl.abort();
        await run;
        await c.close();
      };
    },
  };
}

async function measure(name: string, carrier: Carrier, jpegs: Uint8Array[]): Promise<BenchRow[]> {
  const sentAt = new Map<number, number>(), lat: number[] = [];
  let got = 0;
  const stop = await carrier.receive((i) => {
    got++;
    const t = sentAt.get(i);
    if (t !== undefined) lat.push(performance.now() - t);
  });
  try {
    // As fast as possible: up to SEND_WINDOW frames in flight, each awaited in order, until the last arrives.
    const frames = Array.from({ length: BURST }, (_, i) => tagged(jpegs[i % jpegs.length], i));
    const cpu0 = ownCpu(), server0 = serverCpu();
    const t0 = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < BURST; i++) {
      const p = carrier.send(frames[i]);
      p.catch(() => {/* thrown again below, where it is awaited in order */});
      inFlight.push(p);
      if (inFlight.length >= SEND_WINDOW) await inFlight.shift();
    }
    for (const p of inFlight) await p;
    const deadline = Date.now() + 30_000;
    while (got < BURST && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const burstS = (performance.now() - t0) / 1000;
    const ownMs = (ownCpu() - cpu0) * 1000 / BURST, serverMs = (serverCpu() - server0) * 1000 / BURST;
    const bytes = jpegs.reduce((n, j) => n + j.byteLength, 0) / jpegs.length * got;
    // Paced: latency at a steady rate.
    got = 0;
    const n = PACED_S * PACED_FPS, start = performance.now();
    for (let i = 0; i < n; i++) {
      const due = start + (i * 1000) / PACED_FPS;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const id = 1_000_000 + i;
      sentAt.set(id, performance.now());
      await carrier.send(tagged(jpegs[i % jpegs.length], id));
    }
    const until = Date.now() + 10_000;
    while (lat.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const row = (
      metric: string,
      value: number,
      unit: string,
      goal?: string,
      pass?: boolean,
      note?: string,
    ) => ({
      bench: "bus",
      metric: `${name}: ${metric}`,
      value,
      unit,
      goal,
      pass,
      note,
    });
    const fps = got === 0 ? 0 : BURST / burstS;
    const p99 = lat.length > 0 ? percentile(lat, 0.99) : NaN;
    return [
      row(
        "frames/s, as fast as possible",
        fps,
        "frames/s",
        "≥ 1000",
        fps >= 1000,
        `${BURST} frames, ≤ ${SEND_WINDOW} in flight`,
      ),
      row("MB/s, as fast as possible", bytes / burstS / 1e6, "MB/s"),
      row(
        "server CPU per frame, as fast as possible",
        serverMs,
        "ms",
        undefined,
        undefined,
        "all its processes",
      ),
      row("bench process CPU per frame, as fast as possible", ownMs, "ms", undefined, undefined, "pub + sub"),
      row(`latency p50 at ${PACED_FPS} frames/s`, lat.length > 0 ? percentile(lat, 0.5) : NaN, "ms"),
      row(`latency p99 at ${PACED_FPS} frames/s`, p99, "ms", "< 50", p99 < 50, `${lat.length}/${n} received`),
    ];
  } finally {
    await stop();
  }
}

/** Runs the four back ends in turn; see the module doc. */
export async function busBench(): Promise<BenchRow[]> {
  const jpegs = (await loadFrames(20)).map((f) => f.jpeg);
  const rows: BenchRow[] = [];
  const open = (url: string) =>
    connectBus(selectBus({ busUrl: url, env: () => undefined }), log, { publisher: true });
  const run = async (name: string, url: string, make: (a: Bus, b: Bus) => Carrier) => {
    const a = await open(url), b = await open(url);
    try {
      rows.push(...await measure(name, make(a, b), jpegs));
    } finally {
      await a.close();
      await b.close();
    }
  };
  const redis = await startRedis();
  try {
    await run("Redis", redis.url, (a, b) => pubsub(a, b, "bench_frames"));
  } finally {
    await redis.stop();
  }
  const cluster = await startRedisCluster();
  try {
    await run("Redis Cluster", cluster.url, (a, b) => pubsub(a, b, "bench_frames"));
  } finally {
    await cluster.stop();
  }
  const nats = await startNats();
  try {
    await run("NATS", nats.url, (a, b) => pubsub(a, b, "bench_frames"));
    await run("JetStream (durable)", nats.url, (a, b) => durable(a, b, "bench_frames"));
  } finally {
    await nats.stop();
  }
  return rows;
}
