/**
 * The fault suite (issue 7): the whole pipeline as real processes (GStreamer RTSP camera → RTSP node → aggregator at
 * `--buffer-size 20`, a segment every 2 s → dumper and S3 pusher against radosgw, on a private Redis), and while it
 * runs, one fault after the other, each checked against what should happen. Each fault is a function returning one
 * row `fault | expected | observed | pass`; `deno task bench faults` records them in `bench/RESULTS.md`.
 *
 * Durations come from the environment so a developer can run it short; the defaults are the issue's:
 *
 * | variable                 | default | meaning                                                      |
 * |--------------------------|---------|--------------------------------------------------------------|
 * | `FAULTS_ONLY`            | all     | comma-separated fault numbers to run, e.g. `1,3,5`            |
 * | `FAULTS_S3_OUTAGE_S`     | 60      | how long the S3 gateway stays down (fault 2)                  |
 * | `FAULTS_STALL_TIMEOUT_S` | 3       | the RTSP node's `--stall-timeout` (fault 4)                   |
 * | `FAULTS_FREEZE_S`        | 8       | how long the camera is frozen with SIGSTOP (fault 4)          |
 * | `FAULTS_MALFORMED`       | 10000   | malformed messages per topic (fault 6)                        |
 * | `FAULTS_ECHO`            | off     | `1` prints every node line                                    |
 *
 * @example
 * ```sh
 * FAULTS_S3_OUTAGE_S=10 FAULTS_MALFORMED=2000 deno task bench faults
 * ```
 * @module
 */

import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import type { S3Client } from "@aws-sdk/client-s3";
import { IMAGE_DATA_TYPE } from "../../src/bus/message.ts";
import { encodeMessage } from "../../src/bus/wire.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";
import { streamKey, STREAMS_KEY } from "../../src/bus/stream.ts";
import { NODES_KEY, TOPICS_KEY } from "../../src/bus/registry.ts";
import { safeName, STEM_PATTERN } from "../../src/sinks/naming.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";
import { probeMp4 } from "../../test/helpers/ffprobe.ts";
import {
  auditS3,
  captureSpan,
  dirBytes,
  dumperSegments,
  dumperStems,
  listObjects,
  s3Client,
  walk,
} from "./audit.ts";
import { malformedMessage } from "./malformed.ts";
import { PIPE, type Pipeline, type PipelineNode, startPipeline } from "../pipeline.ts";
import type { BenchRow } from "../table.ts";

/** Durations and sizes of a run; see the module doc for the environment variables. */
export interface FaultConfig {
  only?: number[];
  s3OutageS: number;
  stallTimeoutS: number;
  freezeS: number;
  malformed: number;
  hugeBytes: number;
  echo: boolean;
}

/**
 * The configuration from the environment, with the issue's values as defaults.
 *
 * @example
 * ```ts
 * Deno.env.set("FAULTS_S3_OUTAGE_S", "10");
 * faultConfigFromEnv().s3OutageS; // 10
 * ```
 */
export function faultConfigFromEnv(): FaultConfig {
  const num = (k: string, d: number) => {
    const v = Number(Deno.env.get(k) ?? NaN);
    return Number.isFinite(v) && v > 0 ? v : d;
  };
  const only = Deno.env.get("FAULTS_ONLY")?.split(",").map(Number).filter((n) => n >= 1 && n <= 8);
  const stallTimeoutS = num("FAULTS_STALL_TIMEOUT_S", 3);
  return {
    only: only && only.length > 0 ? only : undefined,
    s3OutageS: num("FAULTS_S3_OUTAGE_S", 60),
    stallTimeoutS,
    freezeS: num("FAULTS_FREEZE_S", stallTimeoutS + 5),
    malformed: num("FAULTS_MALFORMED", 10_000),
    hugeBytes: num("FAULTS_HUGE_BYTES", 5 * 2 ** 20),
    echo: Deno.env.get("FAULTS_ECHO") === "1",
  };
}

/** A fault: breaks something in the running pipeline and reports what it saw. */
export type Fault = (p: Pipeline, cfg: FaultConfig) => Promise<BenchRow>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One table row. */
function row(fault: string, expected: string, observed: string, pass: boolean): BenchRow {
  return { bench: "faults", metric: fault, value: 0, unit: "", expected, observed, pass };
}

/** Polls `check` every `stepMs` until true; the milliseconds it took, or null after `timeoutMs`. */
async function timeUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  stepMs = 200,
): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await check()) return performance.now() - t0;
    await sleep(stepMs);
  }
  return null;
}

/** Milliseconds until a node's metric exceeds its value now (null after `timeoutMs`). */
async function untilMetricGrows(node: PipelineNode, name: string, timeoutMs: number): Promise<number | null> {
  const base = await node.metric(name);
  return await timeUntil(async () => (await node.metric(name)) > base, timeoutMs);
}

const fmtS = (ms: number | null) => (ms === null ? "never" : `${(ms / 1000).toFixed(1)} s`);

/** Nodes of the pipeline that run now. */
function liveNodes(p: Pipeline): PipelineNode[] {
  return Object.values(p.nodes).filter((n): n is PipelineNode => n !== undefined);
}

/** Unexpected exits of any node so far, as text ("" when none). */
function exits(p: Pipeline): string {
  return liveNodes(p).filter((n) => n.unexpectedExits.length > 0)
    .map((n) => `${n.name} exited ${n.unexpectedExits.join(",")}`).join("; ");
}

/** Lines of a node logged from index `from` on that match `re`. */
function linesSince(node: PipelineNode, from: number, re: RegExp): string[] {
  return node.lines().slice(from).filter((l) => re.test(l));
}

let client: S3Client | undefined;
const s3 = (p: Pipeline) => (client ??= s3Client(p.s3!));

/**
 * Waits (≤ `timeoutMs`) until the pusher's outbox is empty and S3 holds exactly the segments the dumper saved, then
 * audits S3. Both sinks read the same durable stream, so the dumper's directory is the list of what S3 should hold.
 */
async function settleAndAudit(p: Pipeline, timeoutMs: number) {
  let missing: string[] = [], extra: string[] = [];
  const settled = await timeUntil(
    async () => {
      if ((await p.nodes.pusher!.metric("msight_outbox_depth")) > 0) return false;
      const local = await dumperStems(p.saveDir);
      const remote = new Set(
        (await listObjects(s3(p), PIPE.bucket, `${PIPE.prefix}/`)).filter((o) => o.key.endsWith(".json"))
          .map((o) => o.key.slice(o.key.lastIndexOf("/") + 1, -5)),
      );
      missing = [...local].filter((s) => !remote.has(s));
      extra = [...remote].filter((s) => !local.has(s));
      return missing.length === 0 && extra.length === 0;
    },
    timeoutMs,
    1000,
  );
  const audit = await auditS3(s3(p), PIPE.bucket, PIPE.prefix);
  return { settledMs: settled, missing, extra, audit };
}

function auditText(a: Awaited<ReturnType<typeof settleAndAudit>>): string {
  return `${a.audit.stems.size} segments in S3, ${a.missing.length} missing, ${a.extra.length} not in the dumper, ` +
    `${a.audit.incomplete.length} incomplete, ${a.audit.corrupt.length} corrupt (sha256 + ffprobe), ` +
    `${a.audit.repeatedFrameIds} frame ids in two segments`;
}

const auditOk = (a: Awaited<ReturnType<typeof settleAndAudit>>) =>
  a.settledMs !== null && a.audit.incomplete.length === 0 && a.audit.corrupt.length === 0 &&
  a.audit.repeatedFrameIds === 0;

/** Segment files waiting in the pusher's spool (its `failed/` folder aside). */
async function spooled(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".entry.json")) n++;
  return n;
}

/** 1. SIGKILL the pusher while a segment is in its outbox, restart it. */
export const pusherKilled: Fault = async (p) => {
  const pusher = p.nodes.pusher!;
  // Catch a segment between spooling and upload: poll the spool fast, kill the moment one is there.
  const caught = await timeUntil(async () => (await spooled(p.spoolDir)) > 0, 30_000, 10);
  pusher.kill("SIGKILL");
  await pusher.proc!.exit;
  const left = await spooled(p.spoolDir);
  await sleep(3000); // segments keep coming into the stream meanwhile
  await pusher.start();
  const a = await settleAndAudit(p, 60_000);
  return row(
    "1. SIGKILL the S3 pusher mid-upload, restart it",
    "every segment in S3 exactly once (same set as the dumper's), none corrupt (ffprobe, sha256 = .json)",
    `killed with ${left} segment(s) in the outbox${caught === null ? " (none caught in flight)" : ""}; ` +
      `settled in ${fmtS(a.settledMs)}: ${auditText(a)}`,
    caught !== null && auditOk(a),
  );
};

/** 2. The S3 gateway down for a while, then back. */
export const s3Outage: Fault = async (p, cfg) => {
  const pusher = p.nodes.pusher!;
  const maxBytes = 64 * 2 ** 20;
  const dropped0 = await pusher.metric("msight_outbox_segments_dropped_total");
  await p.s3!.pauseGateway();
  let peakDisk = 0, peakDepth = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < cfg.s3OutageS * 1000) {
    peakDisk = Math.max(peakDisk, await dirBytes(p.spoolDir));
    peakDepth = Math.max(peakDepth, await pusher.metric("msight_outbox_depth"));
    await sleep(1000);
  }
  await p.s3!.restartGateway();
  const drained = await timeUntil(
    async () => (await pusher.metric("msight_outbox_depth")) === 0,
    120_000,
    500,
  );
  const a = await settleAndAudit(p, 60_000);
  const dropped = (await pusher.metric("msight_outbox_segments_dropped_total")) - dropped0;
  return row(
    `2. S3 gateway down ${cfg.s3OutageS} s, then back`,
    "all uploaded after, outbox drained, spool on disk ≤ --spool-max-bytes (64 MiB)",
    `outbox peaked at ${peakDepth} segments, ${(peakDisk / 2 ** 20).toFixed(1)} MiB on disk; drained ` +
      `${fmtS(drained)} after the gateway answered; ${dropped} dropped; ${auditText(a)}`,
    drained !== null && peakDisk <= maxBytes && dropped === 0 && auditOk(a) && a.missing.length === 0,
  );
};

/** 3. Redis restarts (empty). */
export const redisRestart: Fault = async (p) => {
  const nodes = liveNodes(p);
  const from = nodes.map((n) => n.lines().length);
  await p.redis.restart(500);
  // Counted from the moment Redis answers again.
  const before = await Promise.all(nodes.map((n) => n.metric(progressMetric(n))));
  // Both clocks start when Redis answers: readiness, and each node's own progress counter moving.
  const [readyMs, flowMs] = await Promise.all([
    Promise.all(nodes.map((n) => timeUntil(() => n.ready(), 15_000, 100))),
    Promise.all(
      nodes.map((n, i) =>
        timeUntil(async () => (await n.metric(progressMetric(n))) > before[i], 20_000, 250)
      ),
    ),
  ]);
  const bus = new Redis({ host: "127.0.0.1", port: p.redis.port, lazyConnect: true });
  await bus.connect();
  await sleep(11_000); // one heartbeat interval (10 s)
  const registered = await bus.hlen(NODES_KEY);
  const topics = await bus.hlen(TOPICS_KEY);
  const announced = await bus.hexists(STREAMS_KEY, PIPE.video);
  const groups = await bus.xinfo("GROUPS", streamKey(PIPE.video)).then(
    (g) => (g as unknown[]).length,
    () => 0,
  );
  bus.disconnect();
  const worstReady = Math.max(...readyMs.map((m) => m ?? Infinity));
  // Proof that each node saw the outage (and was not simply faster than our first probe).
  const saw = nodes.filter((n, i) => linesSince(n, from[i], /connection restored/).length > 0).length;
  const ex = exits(p);
  return row(
    "3. Redis restarts (empty)",
    "every node /readyz 200 again within 5 s, frames and segments flowing, no node exits; registry, stream and " +
      "consumer groups rebuilt",
    nodes.map((n, i) => `${n.name}: ready ${fmtS(readyMs[i])}, flowing ${fmtS(flowMs[i])}`).join("; ") +
      `; ${saw}/${nodes.length} logged "connection restored"; after 11 s: ${registered} nodes registered, ${topics} topics, stream announced ${
        announced === 1
      }, ` +
      `${groups} consumer groups${ex ? `; ${ex}` : "; no exit"}`,
    saw === nodes.length && worstReady <= 5000 && flowMs.every((m) => m !== null) && !ex &&
      registered >= nodes.length &&
      topics >= 2 && announced === 1 && groups >= nodes.length - 2,
  );
};

/** The counter that shows a node doing its work. */
function progressMetric(n: PipelineNode): string {
  switch (n.kind) {
    case "rtsp":
      return "msight_frames_published_total";
    case "aggregator":
      return "msight_segments_published_total";
    case "dumper":
      return "msight_dumper_segments_written_total";
    default:
      return "msight_outbox_segments_uploaded_total";
  }
}

/** 4. The camera restarts, then freezes (SIGSTOP) longer than the stall timeout. */
export const cameraFaults: Fault = async (p, cfg) => {
  const rtsp = p.nodes.rtsp;
  await p.camera.restart();
  const afterRestart = await untilMetricGrows(rtsp, "msight_frames_received_total", 30_000);
  await sleep(2000);
  const from = rtsp.lines().length;
  const stalls0 = await rtsp.metric("msight_stalls_total");
  p.camera.pause();
  await sleep(cfg.freezeS * 1000);
  p.camera.resume();
  const afterFreeze = await untilMetricGrows(rtsp, "msight_frames_received_total", 30_000);
  const stalls = (await rtsp.metric("msight_stalls_total")) - stalls0;
  const logged = linesSince(rtsp, from, /stalled: no frame/);
  return row(
    `4. camera restarts; camera frozen (SIGSTOP) ${cfg.freezeS} s > --stall-timeout ${cfg.stallTimeoutS} s`,
    "frames again within 5 s of the camera returning; the stall detected (stalls_total) and logged",
    `frames ${fmtS(afterRestart)} after the restart, ${
      fmtS(afterFreeze)
    } after SIGCONT; ${stalls} stall(s) ` +
      `counted, ${logged.length} logged${logged[0] ? ` ("${logged[0].split(":: ")[1] ?? logged[0]}")` : ""}`,
    afterRestart !== null && afterRestart <= 5000 && afterFreeze !== null && afterFreeze <= 5000 &&
      stalls >= 1 &&
      logged.length >= 1,
  );
};

/** Segments of the camera in the dumper's directory, by first capture time. */
async function cameraSegments(p: Pipeline) {
  const segs = [...(await dumperSegments(p.saveDir)).entries()]
    .filter(([stem]) => stem.startsWith(`${PIPE.sensor}_`))
    .map(([stem, json]) => ({ stem, ...captureSpan(json) }));
  return segs.sort((a, b) => a.first - b.first);
}

/** 5. SIGKILL the aggregator mid-segment, restart it. */
export const aggregatorKilled: Fault = async (p) => {
  const agg = p.nodes.aggregator;
  const published = () => agg.lines().filter((l) => / :: published segment of /.test(l)).length;
  const n0 = published();
  await timeUntil(() => published() > n0, 10_000, 50);
  await sleep(1000); // half-way through the next 2 s segment
  const killedAt = Date.now() / 1000;
  agg.kill("SIGKILL");
  await agg.proc!.exit;
  const from = agg.lines().length;
  await sleep(1000);
  await agg.start();
  const restartedAt = Date.now() / 1000;
  // The report comes before the node is ready; its line may still be on its way through the pipe to us.
  await timeUntil(() => linesSince(agg, from, /previous run .* lost/).length > 0, 5000, 50);
  const lostMetric = await agg.metric("msight_segments_dropped_total");
  const reported = linesSince(agg, from, /previous run .* lost/);
  // Two full segments after the restart, then look at the sequence on disk.
  await timeUntil(
    async () => (await cameraSegments(p)).filter((s) => s.first > restartedAt).length >= 2,
    30_000,
  );
  const segs = await cameraSegments(p);
  const before = segs.filter((s) => s.last < killedAt).at(-1);
  const after = segs.filter((s) => s.first > killedAt);
  const fps = 10;
  const gapFrames = before && after[0] ? Math.round((after[0].first - before.last) * fps) - 1 : NaN;
  const inProgress = before ? Math.round((killedAt - before.last) * fps) : NaN;
  const down = after[0] ? Math.round((after[0].first - killedAt) * fps) : NaN;
  let goodAfter = 0;
  for (const s of after.slice(0, 2)) {
    // Missing or unreadable: counted as not good below.
    const probe = await probeMp4(await Deno.readFile(`${p.saveDir}/${s.stem}.mp4`)).catch(() => null);
    if (probe && probe.frames === s.frames && s.frames === 20) goodAfter++;
  }
  return row(
    "5. SIGKILL the aggregator mid-segment, restart it",
    "at most the segment in progress lost (≤ 20 frames + those sent while it was down), reported at restart " +
      "(log + segments_dropped_total{reason=crash}); the next segments whole",
    `${gapFrames} frames missing between the last segment before and the first after: ~${inProgress} in ` +
      `progress at the kill + ~${down} while down/restarting; restart reported: ${reported.length > 0} ` +
      `(segments_dropped_total ${lostMetric}); ${goodAfter}/2 next segments whole (20 frames, ffprobe)`,
    Number.isFinite(gapFrames) && inProgress <= 20 + 1 && goodAfter === 2 && reported.length > 0 &&
      lostMetric >= 1,
  );
};

/** Sum of `msight_messages_malformed_total` of a node. */
const malformedCount = (n: PipelineNode) => n.metric("msight_messages_malformed_total");

/** 6. Malformed messages on the frame topic (pub/sub) and the segment topic (its durable stream). */
export const malformedFlood: Fault = async (p, cfg) => {
  const { aggregator, dumper, pusher, rtsp } = p.nodes;
  const sinks = [dumper, ...(pusher ? [pusher] : [])];
  const bus = new Redis({ host: "127.0.0.1", port: p.redis.port, lazyConnect: true });
  await bus.connect();
  const opts = { hugeEvery: 1000, hugeBytes: cfg.hugeBytes };
  const agg0 = await malformedCount(aggregator);
  const sink0 = await Promise.all(sinks.map(malformedCount));
  let aggLag: number | null = 0, sinkLag: number | null = 0;
  try {
    // Frame topic: pub/sub, in batches the aggregator must count before the next (a subscriber that falls too far
    // behind is cut off by Redis' output-buffer limit, which would lose messages, not count them).
    for (let i = 0; i < cfg.malformed && aggLag !== null;) {
      const pipe = bus.pipeline();
      const end = Math.min(cfg.malformed, i + 100);
      for (; i < end; i++) pipe.publish(PIPE.frames, Buffer.from(malformedMessage(i, opts)));
      await pipe.exec();
      aggLag = await timeUntil(async () => (await malformedCount(aggregator)) - agg0 >= end, 30_000, 50);
    }
    // Segment topic: the sinks read its durable stream, so that is where a bad producer's entries reach them.
    for (let i = 0; i < cfg.malformed && sinkLag !== null;) {
      const pipe = bus.pipeline();
      const end = Math.min(cfg.malformed, i + 50);
      for (; i < end; i++) {
        pipe.xadd(streamKey(PIPE.video), "*", "d", Buffer.from(malformedMessage(i, opts)));
      }
      await pipe.exec();
      sinkLag = await timeUntil(
        async () => {
          const now = await Promise.all(sinks.map(malformedCount));
          return now.every((v, k) => v - sink0[k] >= end);
        },
        30_000,
        50,
      );
    }
  } finally {
    bus.disconnect();
  }
  await sleep(2000); // anything counted late, or a node dying late
  const aggN = (await malformedCount(aggregator)) - agg0;
  const sinkN = await Promise.all(sinks.map(async (n, k) => (await malformedCount(n)) - sink0[k]));
  const alive = await Promise.all([rtsp, aggregator, ...sinks].map((n) => n.ready()));
  const ex = exits(p);
  const n = cfg.malformed;
  return row(
    `6. ${n} malformed messages per topic (random bytes, wrong types, ${
      (cfg.hugeBytes / 2 ** 20).toFixed(0)
    } MB ` +
      "ones, unknown data_type, truncated)",
    "no node exits; every message counted in msight_messages_malformed_total of each node that reads the topic",
    `aggregator counted ${aggN}/${n} (frame topic); ${
      sinks.map((s, k) => `${s.name} ${sinkN[k]}/${n}`).join(", ")
    } (segment stream); all ready after: ${alive.every(Boolean)}${ex ? `; ${ex}` : "; no exit"}`,
    aggN === n && sinkN.every((v) => v === n) && alive.every(Boolean) && !ex,
  );
};

const FRAMES = new URL("../../test/fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;

/** Hostile sensor names: separators, dot-dot, NUL, absolute paths, very long. */
export const HOSTILE_SENSORS = [
  "../../escape",
  "/tmp/msight-abs-escape",
  "a/b/../../c",
  "..",
  "nul\u0000byte",
  "L".repeat(4096),
  "%2F..%2F",
];

/**
 * Publishes `frames` real frames for each sensor at 10 fps, as an RTSP node would.
 *
 * @example
 * ```ts
 * await publishFramesAs(6379, ["../../x", "cam/1"], 5);
 * ```
 */
export async function publishFramesAs(redisPort: number, sensors: string[], frames: number): Promise<void> {
  const bus = new Redis({ host: "127.0.0.1", port: redisPort, lazyConnect: true });
  await bus.connect();
  const ids = new Snowflake(977);
  try {
    for (let k = 0; k < frames; k++) {
      const jpeg = await Deno.readFile(`${FRAMES}${String(k % 170).padStart(4, "0")}.jpg`);
      const t = Date.now() / 1000;
      for (const sensor of sensors) {
        const msg = encodeMessage({
          dataType: IMAGE_DATA_TYPE,
          sensorName: sensor,
          captureTimestamp: t,
          creationTimestamp: t,
          frameId: ids.next(),
          deviceName: PIPE.device,
          image: jpeg,
          isEncoded: true,
          detectionResults: null,
          size: [960, 1280, 3],
        });
        await bus.publish(PIPE.frames, Buffer.from(msg));
      }
      await sleep(100);
    }
  } finally {
    bus.disconnect();
  }
}

/** 7. Hostile sensor names. */
export const hostileNames: Fault = async (p) => {
  const rootBefore = new Set(await walk(p.root));
  await publishFramesAs(p.redis.port, HOSTILE_SENSORS, 5);
  // Each sensor's 5 frames close as one segment after --max-idle (5 s); wait for all in the dumper (and S3).
  const hasAll = async () => {
    const stems = [...await dumperStems(p.saveDir)];
    return HOSTILE_SENSORS.every((s) => stems.some((st) => st.startsWith(`${safeName(s)}_`)));
  };
  const saved = await timeUntil(hasAll, 60_000, 500);
  const a = p.s3 ? await settleAndAudit(p, 60_000) : undefined;
  const files = await walk(p.saveDir);
  const badFiles = files.filter((f) =>
    f.includes("/") || !STEM_PATTERN.test(f.replace(/\.(mp4|json)$/, "")) || !/\.(mp4|json)$/.test(f)
  );
  const newOutside = (await walk(p.root)).filter((f) =>
    !rootBefore.has(f) && !f.startsWith("videos/") && !f.startsWith("spool/")
  );
  const absEscape = await Deno.stat("/tmp/msight-abs-escape").then(() => true, () => false);
  const keyPrefix = `${PIPE.prefix}/${safeName(PIPE.device)}/`;
  const keys = a?.audit.keys ?? [];
  const badKeys = keys.filter((k) => {
    const parts = k.split("/");
    return !k.startsWith(keyPrefix) || parts.length !== 6 ||
      parts.some((s) => s === "" || s === "." || s === ".." || [...s].some((c) => c.charCodeAt(0) < 0x20));
  });
  const hostileKeys = keys.filter((k) => HOSTILE_SENSORS.some((s) => k.includes(`/${safeName(s)}/`)));
  const longest = Math.max(0, ...files.map((f) => f.length));
  return row(
    "7. sensor_name with `/`, `..`, NUL, an absolute path, 4096 characters",
    "every segment saved/uploaded under its own percent-encoded name, inside --save-dir and under " +
      "prefix/device/; nothing elsewhere",
    `all ${HOSTILE_SENSORS.length} sensors saved: ${saved !== null} (${
      fmtS(saved)
    }); ${files.length} files in ` +
      `--save-dir, ${badFiles.length} misnamed or nested, longest name ${longest} chars; ${newOutside.length} new ` +
      `paths outside videos/ and spool/; /tmp/msight-abs-escape exists: ${absEscape}; ` +
      (a
        ? `${keys.length} S3 keys, ${badKeys.length} outside ${keyPrefix}<sensor>/<date>/<hour>/, ` +
          `${hostileKeys.length} of the hostile sensors`
        : "no S3 in this run"),
    saved !== null && badFiles.length === 0 && newOutside.length === 0 && !absEscape &&
      badKeys.length === 0 &&
      (!a || hostileKeys.length >= 2 * HOSTILE_SENSORS.length),
  );
};

/** Mounts a tmpfs of `bytes` at `dir` (root only); false when it cannot. */
async function mountTmpfs(dir: string, bytes: number): Promise<boolean> {
  // No mount(8) or no root: false, and the caller says the fault was not run.
  const r = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => ({ success: false }));
  return r.success;
}

async function umount(dir: string): Promise<void> {
  // Cleanup only: a tmpfs that is already gone (or was never mounted) needs nothing.
  await new Deno.Command("umount", { args: [dir], stdout: "null", stderr: "null" }).output().catch(() => {});
}

/** 8. The save dir's disk fills up: with retention by free space, and without any limit. */
export const diskFull: Fault = async (p) => {
  const MiB = 2 ** 20;
  const dirA = `${p.root}/small-a`, dirB = `${p.root}/small-b`;
  await Deno.mkdir(dirA);
  await Deno.mkdir(dirB);
  const tmpfs = (await mountTmpfs(dirA, 24 * MiB)) && (await mountTmpfs(dirB, 6 * MiB));
  try {
    // A: a real small disk, already half full of someone else's data; retention keeps 6 MiB free. Without a
    // tmpfs, --max-bytes stands in for the disk's size.
    if (tmpfs) await Deno.writeFile(`${dirA}/other-data.bin`, new Uint8Array(12 * MiB));
    const limit = tmpfs ? ["--min-free-bytes", String(6 * MiB)] : ["--max-bytes", String(6 * MiB)];
    const a = await p.addNode("dumper", "faults_dumper_small", [
      "-st",
      PIPE.video,
      "--save-dir",
      dirA,
      ...limit,
    ], {
      permissions: permissionFlags("dumper", { saveDir: dirA }),
    });
    // B (tmpfs only): no limit at all, the disk fills to the last byte.
    const b = tmpfs
      ? await p.addNode("dumper", "faults_dumper_full", ["-st", PIPE.video, "--save-dir", dirB], {
        permissions: permissionFlags("dumper", { saveDir: dirB }),
      })
      : undefined;
    // Each new group starts at the stream's first entry: up to --stream-maxlen segments at once, then live ones.
    const deleted = await timeUntil(
      async () => (await a.metric("msight_dumper_retention_deleted_total")) > 0,
      60_000,
    );
    const written0 = await a.metric("msight_dumper_segments_written_total");
    const stillWriting = await untilMetricGrows(a, "msight_dumper_segments_written_total", 20_000);
    const stored = await a.metric("msight_dumper_stored_bytes");
    const logged = a.lines().filter((l) => /retention deleted/.test(l)).length;
    let bText = "no tmpfs: case without limits skipped";
    let bOk = true;
    if (b) {
      const failed = await timeUntil(
        async () => (await b.metric("msight_segments_failed_total")) > 0,
        30_000,
      );
      await sleep(3000);
      const errors = b.lines().filter((l) => / (ERROR|WARNING) :: .*(not saved|space)/i.test(l));
      const healthy = await fetch(`http://127.0.0.1:${b.port}/healthz`).then((r) => r.status, () => 0);
      const partial = (await walk(dirB)).filter((f) => !/\.(mp4|json)$/.test(f) || f.includes(".tmp"));
      bText = `B (6 MiB tmpfs, no limit): failures counted ${fmtS(failed)} after start ` +
        `(segments_failed_total ${await b.metric(
          "msight_segments_failed_total",
        )}), ${errors.length} write-error lines ` +
        `(first: "${(errors[0] ?? "").split(":: ")[1] ?? ""}"), /healthz ${healthy}, ` +
        `${partial.length} temporary files left`;
      bOk = failed !== null && healthy === 200 && b.unexpectedExits.length === 0;
      await b.stop(5);
    }
    const aText =
      `A (${
        tmpfs ? "24 MiB tmpfs with 12 MiB of other data, --min-free-bytes 6 MiB" : "--max-bytes 6 MiB"
      }): ` +
      `retention acted ${fmtS(deleted)} after start, ${logged} "retention deleted" lines, ` +
      `${await a.metric("msight_dumper_retention_deleted_total")} deleted, stored ${
        (stored / MiB).toFixed(1)
      } MiB, ` +
      `still writing new segments: ${stillWriting !== null} (${written0} written before)`;
    const aOk = deleted !== null && logged > 0 && stillWriting !== null && a.unexpectedExits.length === 0;
    await a.stop(5);
    return row(
      "8. the save dir's disk fills up",
      "retention deletes the oldest segments and logs/counts it; with no limit the write errors are logged and " +
        "counted, segments stay in the stream for a retry; nothing crashes",
      `${aText}; ${bText}`,
      aOk && bOk,
    );
  } finally {
    if (tmpfs) {
      await umount(dirA);
      await umount(dirB);
    }
  }
};

/** Every fault, numbered as in the issue. */
export const FAULTS: Record<number, Fault> = {
  1: pusherKilled,
  2: s3Outage,
  3: redisRestart,
  4: cameraFaults,
  5: aggregatorKilled,
  6: malformedFlood,
  7: hostileNames,
  8: diskFull,
};

/**
 * Runs one fault; an exception becomes a failed row instead of ending the suite.
 *
 * @example
 * ```ts
 * import type { Pipeline } from "../pipeline.ts";
 * declare const pipeline: Pipeline;
 * const row = await runFault(3, pipeline, faultConfigFromEnv());
 * ```
 */
export async function runFault(n: number, p: Pipeline, cfg: FaultConfig): Promise<BenchRow> {
  const t0 = Date.now();
  console.log(`fault ${n} ...`);
  try {
    const r = await FAULTS[n](p, cfg);
    console.log(
      `fault ${n}: ${r.pass ? "pass" : "FAIL"} in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${r.observed}`,
    );
    return r;
  } catch (err) {
    console.log(`fault ${n}: error: ${(err as Error).stack}`);
    return row(`${n}. (did not complete)`, "", `error: ${(err as Error).message.split("\n")[0]}`, false);
  }
}

/**
 * Runs the suite (`cfg.only` or all eight faults) on one pipeline.
 *
 * @example
 * ```ts
 * const rows = await faultsBench({ ...faultConfigFromEnv(), only: [3, 5] });
 * ```
 */
export async function faultsBench(cfg = faultConfigFromEnv()): Promise<BenchRow[]> {
  const wanted = cfg.only ?? [1, 2, 3, 4, 5, 6, 7, 8];
  const needS3 = wanted.some((n) => n === 1 || n === 2 || n === 7);
  const p = await startPipeline({ s3: needS3, stallTimeoutS: cfg.stallTimeoutS, echo: cfg.echo });
  const rows: BenchRow[] = [];
  try {
    await sleep(4000); // a first segment or two through every sink
    for (const n of wanted) {
      if ((n === 1 || n === 2) && !p.s3) continue;
      rows.push(await runFault(n, p, cfg));
    }
  } finally {
    client?.destroy();
    client = undefined;
    await p.stop();
  }
  return rows;
}
