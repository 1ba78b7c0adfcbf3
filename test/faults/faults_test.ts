/**
 * A short, CI-sized part of the fault suite (`deno task bench faults` runs all eight): the whole pipeline as real
 * processes (GStreamer camera → RTSP node → aggregator → dumper, on a private Redis; no S3, which takes 12 s to
 * start) and three faults that catch regressions in recovery: Redis restarting empty, the aggregator SIGKILLed
 * mid-segment, and 2000 malformed messages per topic. About a minute; every wait is bounded.
 */
import assert from "node:assert/strict";
import {
  aggregatorKilled,
  type FaultConfig,
  malformedFlood,
  redisRestart,
} from "../../bench/faults/faults.ts";
import { type Pipeline, startPipeline } from "../../bench/pipeline.ts";

const cfg: FaultConfig = {
  s3OutageS: 10,
  stallTimeoutS: 3,
  freezeS: 6,
  malformed: 2000,
  hugeBytes: 5 * 2 ** 20,
  echo: false,
};

Deno.test({
  name: "faults: Redis restart, aggregator SIGKILL, malformed flood on the running pipeline",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let p: Pipeline | undefined;
    try {
      p = await startPipeline({ s3: false, stallTimeoutS: cfg.stallTimeoutS });
      const pipe = p;
      await new Promise((r) => setTimeout(r, 3000)); // a first segment through the dumper
      for (
        const [name, fault] of [
          ["Redis restarts (empty): every node recovers within 5 s", redisRestart],
          ["aggregator SIGKILLed: no frame that reached Redis is lost", aggregatorKilled],
          ["2000 malformed messages per topic: all counted, no node exits", malformedFlood],
        ] as const
      ) {
        await t.step(name, async () => {
          const row = await fault(pipe, cfg);
          assert.ok(row.pass, `${row.metric}\nexpected: ${row.expected}\nobserved: ${row.observed}`);
        });
      }
    } finally {
      await p?.stop();
    }
  },
});
