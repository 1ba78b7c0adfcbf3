/**
 * `deno task bench nats-segments`: how durable segments travel on JetStream, for the choice made in
 * `src/bus/nats/segments.ts` (segments over `max_payload` in the object store, chunked by JetStream). For ~3 MB
 * (100 frames of 1280×960) and ~30 MB (1000 frames) segments: append (object put + reference entry) and read
 * (entry + object get) times, median of a few runs, on a private `nats-server -js`; for comparison, the same
 * segment in one JetStream message on a server whose `max_payload` was raised to fit it.
 *
 * @module
 */

import { startNats } from "../test/helpers/nats_server.ts";
import { connectBus } from "../src/bus/connect.ts";
import { selectBus } from "../src/bus/select.ts";
import type { Bus } from "../src/bus/types.ts";
import { Logger } from "../src/runtime/log.ts";
import type { BenchRow } from "./table.ts";

const log = new Logger({ device: "bench", node: "bench", level: "CRITICAL" });
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function roundTrips(
  bus: Bus,
  topic: string,
  size: number,
  runs: number,
): Promise<{ put: number; get: number }> {
  const caps = { maxLen: 20, maxAgeS: 600 };
  const seg = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
  const c = bus.segments.consumer(topic, { group: "bench", consumer: "bench", log });
  const puts: number[] = [], gets: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await bus.segments.append(topic, seg, caps);
      puts.push(performance.now() - t);
      t = performance.now();
      const [e] = await c.read(1, 5000);
      gets.push(performance.now() - t);
      if (!e || e.bytes.byteLength !== size) throw new Error(`segment ${i} came back wrong`);
      await c.ack(e);
    }
  } finally {
    await c.close();
  }
  return { put: median(puts), get: median(gets) };
}

/** Runs the measurement; see the module doc. */
export async function natsSegmentsBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const [label, size, runs] of [["3 MB", 3_000_000, 5], ["30 MB", 30_000_000, 3]] as const) {
    for (const mode of ["object store", "one message"] as const) {
      const nats = await startNats(mode === "one message" ? { maxPayload: 64 * 1024 * 1024 } : {});
      const bus = await connectBus(selectBus({ busUrl: nats.url, env: () => undefined }), log);
      try {
        const r = await roundTrips(bus, "bench_video", size, runs);
        const note = mode === "one message"
          ? "server max_payload raised to 64 MB"
          : "default max_payload 1 MB";
        rows.push({
          bench: "nats-segments",
          metric: `${label} append, ${mode}`,
          value: r.put,
          unit: "ms",
          note,
        });
        rows.push({
          bench: "nats-segments",
          metric: `${label} read, ${mode}`,
          value: r.get,
          unit: "ms",
          note,
        });
      } finally {
        await bus.close();
        await nats.stop();
      }
    }
  }
  return rows;
}
