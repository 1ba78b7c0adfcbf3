/**
 * What the interop tests (`interop_test.ts` on one Redis, `interop_backends_test.ts` on NATS and a Redis Cluster)
 * share: taps that record every frame published on a topic, the segments a dumper (ours or MSight's) wrote, and
 * the checks on them.
 *
 * @example
 * ```ts
 * import { ffmpegWarnings, saved } from "./interop_util.ts";
 * for (const s of await saved("/tmp/out", ".json")) console.log(s.ids.length, await ffmpegWarnings(s.mp4));
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { connectGuarded } from "../../src/bus/nats/transport.ts";
import { decodeMessage } from "../../src/bus/wire.ts";
import { IMAGE_DATA_TYPE } from "../../src/bus/message.ts";

/** A frame as published: its id and capture time. */
export interface Tapped {
  id: bigint;
  t: number;
}

/**
 * The frames published after one captured later: MSight publishes each frame from a thread of its own
 * (`Node.publish`), so under load one can go out after a later one (MSight's defect, kept visible). Our aggregator
 * drops such a frame as late and counts it (README, aggregator).
 */
export function outOfOrder(frames: Tapped[]): Tapped[] {
  let newest = -Infinity;
  return frames.filter((f) => {
    const late = f.t < newest;
    newest = Math.max(newest, f.t);
    return late;
  });
}

/** A running tap: the frames seen so far, in order. */
export interface Tap {
  frames: Tapped[];
  close(): Promise<void>;
}

function record(frames: Tapped[], bytes: Uint8Array): void {
  const m = decodeMessage(bytes);
  if (m.dataType === IMAGE_DATA_TYPE) frames.push({ id: m.frameId, t: m.captureTimestamp });
}

/**
 * Every ImageData on a Redis pub/sub channel, as published. On a Redis Cluster any node will do: the cluster
 * forwards every classic PUBLISH to every node.
 */
export async function tapRedis(port: number, topic: string): Promise<Tap> {
  const sub = new Redis({ host: "127.0.0.1", port });
  const frames: Tapped[] = [];
  sub.on("messageBuffer", (_ch: Buffer, msg: Buffer) => record(frames, new Uint8Array(msg)));
  await sub.subscribe(topic);
  return {
    frames,
    close: () => Promise.resolve(sub.disconnect()),
  };
}

/** Every ImageData on a core NATS subject (= the topic), as published. */
export async function tapNats(url: string, topic: string): Promise<Tap> {
  const nc = await connectGuarded({ servers: url });
  const frames: Tapped[] = [];
  nc.subscribe(topic, {
    callback: (err, m) => {
      // A missed frame shows as a count that differs from the segments'; this line says why.
      if (err) console.error(`tap on ${topic}: ${err.message}`);
      else record(frames, m.data);
    },
  });
  await nc.flush(); // the server has the subscription before the source starts
  return { frames, close: () => nc.close() };
}

/** A segment as a dumper wrote it: its `.json` text and parsed fields, and its `.mp4` path. */
export interface Saved {
  json: string;
  meta: Record<string, unknown>;
  ids: bigint[];
  mp4: string;
}

/** The frame ids of a JSON text, every digit (JSON.parse would round them). */
export function frameIds(json: string): bigint[] {
  const m = /"frame_ids":\s*\[([^\]]*)\]/.exec(json);
  assert.ok(m, "frame_ids in the .json");
  return m[1].trim() ? m[1].split(",").map((s) => BigInt(s.trim())) : [];
}

/** The segments in a directory (recursively: MSight's dumper writes `<dir>/<sensor>/`), ordered by first frame. */
export async function saved(dir: string, metaSuffix: string): Promise<Saved[]> {
  const out: Saved[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(metaSuffix) && !e.name.startsWith(".")) {
        const json = await Deno.readTextFile(p);
        let meta: Record<string, unknown>;
        try {
          meta = JSON.parse(json);
        } catch {
          // MSight's dumper writes its .json in place, not atomically: one being written is read on the next poll.
          continue;
        }
        out.push({
          json,
          meta,
          ids: frameIds(json),
          mp4: p.slice(0, -metaSuffix.length) + ".mp4",
        });
      }
    }
  };
  await walk(dir).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  return out.sort((a, b) =>
    (a.meta.capture_timestamps as number[])[0] - (b.meta.capture_timestamps as number[])[0]
  );
}

/** What `ffmpeg -v warning -i seg.mp4 -f null -` prints: nothing for a clean file. */
export async function ffmpegWarnings(path: string): Promise<string> {
  const r = await new Deno.Command("ffmpeg", { args: ["-v", "warning", "-i", path, "-f", "null", "-"] })
    .output();
  const d = new TextDecoder();
  return (d.decode(r.stdout) + d.decode(r.stderr)).trim() + (r.success ? "" : ` (exit ${r.code})`);
}

/** The same frames, in the same order, with the same 64-bit ids. */
export function assertSameIds(actual: bigint[], expected: bigint[], what: string): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: ${actual.length} frames in segments, ${expected.length} in`,
  );
  assert.deepEqual(actual, expected, `${what}: frame ids`);
}
