/**
 * `deno task bench [NAME...]`: runs benchmarks (default: all), prints each table, and records it in
 * `bench/RESULTS.md`. Every benchmark compares our node with a baseline measured in the same run.
 *
 * @example
 * ```sh
 * deno task bench source
 * deno task bench soak --duration 120
 * ```
 * @module
 */

import { type BenchRow, formatTable, recordResults } from "./table.ts";
import { sourceBench } from "./source.ts";
import { aggregatorBench } from "./aggregator.ts";
import { faultsBench } from "./faults/faults.ts";
import { capacityBench, capacityConfigFromEnv } from "./capacity.ts";
import { soakBench, soakConfigFromEnv } from "./soak.ts";
import { streamCostBench } from "./stream_cost.ts";
import { natsSegmentsBench } from "./nats_segments.ts";
import { busBench } from "./bus.ts";
import { msightBench } from "./msight.ts";
import { webBench } from "./web.ts";
import { rtspMemoryBench } from "./rtsp_memory.ts";

const BENCHES: Record<string, () => Promise<BenchRow[]>> = {
  source: () => sourceBench(),
  aggregator: () => aggregatorBench(),
  faults: () => faultsBench(),
  // Ours beside MSight_Core 2.0.2's Python nodes (test/peers/msight_core), same input, same time.
  msight: () => msightBench(),
  web: () => webBench(),
  // Where the RTSP node's memory goes (Deno and ffmpeg apart), and what thread counts and V8 flags change, side by side.
  "rtsp-memory": () => rtspMemoryBench(),
  // 1280×720 cameras → 10 fps segments, N = 1..8, with the RTSP nodes thinned to 10 fps as `deno task up` does.
  capacity: () => capacityBench(),
  // The same with the RTSP nodes publishing every frame (MSight's default for a node started alone).
  "capacity-every-frame": () => capacityBench({ ...capacityConfigFromEnv(), rtspMaxFps: 0, floor: false }),
  // The goal's six cameras at the defaults for five minutes, the floor beside them: does the lag stay flat?
  "capacity-hold": () => capacityBench({ ...capacityConfigFromEnv(), counts: [6], durationS: 300 }),
  // Every frame accounted for, and no growth, over SOAK_DURATION_S (30 min by default); soak-5m is the CI-sized run.
  // The durable frame stream's extra CPU per frame, alone (CPU time: tolerable on a busy machine).
  "stream-cost": () => streamCostBench(),
  soak: () => soakBench(),
  "soak-5m": () => soakBench({ ...soakConfigFromEnv(), durationS: 300 }),
  // How JetStream carries segments larger than max_payload (src/bus/nats/segments.ts).
  "nats-segments": () => natsSegmentsBench(),
  // One publisher to one subscriber of 1280×960 JPEG frames on every back end (src/bus/).
  bus: () => busBench(),
};

// `--duration S` (or `--duration=S`): the soak's length in seconds, instead of SOAK_DURATION_S.
const args = [...Deno.args];
const at = args.findIndex((a) => a === "--duration" || a.startsWith("--duration="));
if (at >= 0) {
  const [flag] = args.splice(at, 1);
  const value = flag.includes("=") ? flag.slice(flag.indexOf("=") + 1) : args.splice(at, 1)[0];
  if (!(Number(value) > 0)) {
    console.error(`bench: --duration ${value ?? ""} is invalid: expected a number of seconds > 0`);
    Deno.exit(2);
  }
  BENCHES.soak = () => soakBench({ ...soakConfigFromEnv(), durationS: Number(value) });
}
// The soak runs only when named: it takes half an hour.
const names = args.length > 0 ? args : Object.keys(BENCHES).filter((n) => !n.startsWith("soak"));
const context = async () => {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  return `Run ${
    new Date().toISOString().slice(0, 16)
  }Z on ${navigator.hardwareConcurrency} cores (${cpu}), Deno ${Deno.version.deno}.`;
};
let failed = false;
for (const name of names) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`bench: unknown benchmark ${name}: expected one of ${Object.keys(BENCHES).join(", ")}`);
    Deno.exit(2);
  }
  console.log(`running ${name} ...`);
  const rows = await bench();
  console.log(formatTable(rows));
  await recordResults(new URL("./RESULTS.md", import.meta.url).pathname, name, rows, await context());
  if (rows.some((r) => r.pass === false)) failed = true;
}
if (failed) console.log("some goals were not met (see the 'met' column)");
