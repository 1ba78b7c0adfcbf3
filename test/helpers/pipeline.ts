/**
 * One camera's chain of real node processes on any bus back end: rtsp node → aggregator → dumper, started sink
 * first (so the dumper's durable group exists before the first segment), and stopped camera first, checking that
 * the dumper's files are exactly the segments the aggregator published.
 *
 * @example
 * ```ts
 * import { startChain, stopChain } from "./pipeline.ts";
 * import type { NodeProcess } from "./process.ts";
 * declare const env: Record<string, string>, cameraUrl: string, dir: string;
 * const started: NodeProcess[] = [];
 * const chain = await startChain(env, { sensor: "cam", cameraUrl, dir }, started);
 * const published = await stopChain(chain);
 * ```
 * @module
 */

import assert from "node:assert/strict";
import { jsonFiles } from "./launcher.ts";
import { waitFor } from "./net.ts";
import { type NodeProcess, startNode } from "./process.ts";

/** What a chain carries and where it stores it. */
export interface ChainOptions {
  /** The camera's sensor name; it names the chain's nodes and begins every stored file's name. */
  sensor: string;
  cameraUrl: string;
  /** The dumper's folder. */
  dir: string;
  /** Topic of the frames (`rtsp_topic`). */
  frameTopic?: string;
  /** Topic of the segments (`aggregated_video`). */
  segmentTopic?: string;
}

/** A running chain. */
export interface Chain {
  opts: ChainOptions;
  rtsp: NodeProcess;
  aggregator: NodeProcess;
  dumper: NodeProcess;
}

/** Starts the chain (dumper, aggregator, rtsp node); each process goes into `started` at once, for cleanup. */
export async function startChain(
  env: Record<string, string>,
  opts: ChainOptions,
  started: NodeProcess[],
): Promise<Chain> {
  const { sensor, cameraUrl, dir } = opts;
  const frames = opts.frameTopic ?? "rtsp_topic", segments = opts.segmentTopic ?? "aggregated_video";
  const dumperName = `${sensor}_dumper`;
  const dumper = startNode(
    "nodes/dumper.ts",
    ["-n", dumperName, "-st", segments, "--save-dir", dir, "--transport", "stream"],
    env,
  );
  started.push(dumper);
  await dumper.waitForLine(new RegExp(`from its durable stream as consumer group ${dumperName}\\b`), 60_000);
  const aggregator = startNode("nodes/aggregator.ts", [
    ...`-n ${sensor}_agg -st ${frames} -pt ${segments}`.split(" "),
    ..."--fps 10 --buffer-size 10 --overlap-size 0".split(" "),
  ], env);
  started.push(aggregator);
  await aggregator.waitForLine(new RegExp(`aggregating ${frames} → ${segments}`), 60_000);
  const rtsp = startNode(
    "nodes/rtsp.ts",
    ["-n", sensor, "-pt", frames, "--sensor-name", sensor, "-u", cameraUrl],
    env,
  );
  started.push(rtsp);
  return { opts, rtsp, aggregator, dumper };
}

/** The number of segments the chain's aggregator says it published. */
export function published(chain: Chain): number {
  const re = new RegExp(`published segment of ${chain.opts.sensor}:`);
  return chain.aggregator.stderr.concat(chain.aggregator.stdout).filter((l) => re.test(l)).length;
}

/**
 * Stops the chain camera side first (each node with SIGTERM, exiting 0; the aggregator flushes what it holds) and
 * checks the dumper's folder: one `.json` and one `.mp4` per segment the aggregator published, every name the
 * chain's sensor's, none stored twice. `redelivered`: a segment delivered again (its acknowledgement lost in a
 * fault) and found already saved is fine; else no such line either. Returns the number of segments.
 */
export async function stopChain(chain: Chain, opts: { redelivered?: boolean } = {}): Promise<number> {
  const { rtsp, aggregator, dumper } = chain;
  const { sensor, dir } = chain.opts;
  rtsp.kill("SIGTERM");
  assert.equal(await rtsp.exit, 0, `${sensor}'s rtsp node stopped on SIGTERM`);
  aggregator.kill("SIGTERM");
  assert.equal(await aggregator.exit, 0, `${sensor}'s aggregator stopped on SIGTERM`);
  const n = published(chain);
  await waitFor(async () => (await jsonFiles(dir)).length >= n, 60_000, `${n} segments of ${sensor} on disk`);
  // A segment stored twice would show as one more file: give it time to happen.
  await new Promise((r) => setTimeout(r, 1000));
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  names.sort();
  const listing = `${sensor}: ${n} published, stored:\n${names.join("\n")}`;
  assert.equal(names.filter((f) => f.endsWith(".json")).length, n, listing);
  assert.equal(names.filter((f) => f.endsWith(".mp4")).length, n, listing);
  assert.ok(names.every((f) => f.startsWith(`${sensor}_`)), `only ${sensor}'s segments: ${listing}`);
  if (!opts.redelivered) {
    assert.ok(
      !dumper.stderr.concat(dumper.stdout).some((l) => /already saved/.test(l)),
      "none delivered twice",
    );
  }
  dumper.kill("SIGTERM");
  assert.equal(await dumper.exit, 0, `${sensor}'s dumper stopped on SIGTERM`);
  return n;
}
