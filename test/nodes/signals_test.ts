/**
 * Every node stops gracefully however it is signalled: SIGINT or SIGTERM, sent to the node alone, to its whole process
 * group (as Ctrl-C in a terminal, `kill -TERM -- -PGID` and systemd's `KillMode=control-group` do), or to the group
 * of `deno task NODE` (where the task runner passes the signal on, so the node gets it twice within milliseconds).
 * The result must be the same each way: the aggregator publishes its partial segment, the dumper finishes its
 * writes, the pusher drains for `--drain-timeout`, the RTSP node stops its ffmpeg itself; exit 0, never "exiting
 * now". Real processes, real Redis, real ffmpeg, a real RTSP camera.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { DENO, type NodeProcess, ROOT, startNode, startProcess } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { descendants, type ProcInfo, running } from "../helpers/launcher.ts";
import { makeSegment } from "../helpers/segments.ts";
import { decodeMessage, encodeMessage } from "../../src/bus/wire.ts";
import { IMAGE_DATA_TYPE, type ImageData, type VideoData } from "../../src/bus/message.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";

type Way = "node" | "group" | "twice" | "task";
interface Case {
  way: Way;
  sig: Deno.Signal;
  label: string;
}

const CASES: Case[] = [
  { way: "node", sig: "SIGTERM", label: "SIGTERM to the node alone" },
  { way: "node", sig: "SIGINT", label: "SIGINT to the node alone" },
  { way: "group", sig: "SIGTERM", label: "SIGTERM to its process group" },
  { way: "group", sig: "SIGINT", label: "SIGINT to its process group (Ctrl-C)" },
  // What a task runner or shell that passes the group's signal on does: the node gets it twice, close together.
  { way: "twice", sig: "SIGTERM", label: "SIGTERM to its process group and again to the node 0.1 s later" },
  { way: "task", sig: "SIGTERM", label: "SIGTERM to the group of `deno task`" },
  { way: "task", sig: "SIGINT", label: "SIGINT to the group of `deno task` (Ctrl-C)" },
];

/** Starts `node` the way `c` needs: plain, in its own process group, or under `deno task` in its own group. */
function launch(c: Case, node: string, args: string[], env: Record<string, string>): NodeProcess {
  if (c.way === "task") {
    return startProcess(DENO, ["task", "-q", node, ...args], env, ROOT, { detached: true });
  }
  return startNode(`nodes/${node}.ts`, args, env, ["-A"], { detached: c.way !== "node" });
}

async function send(p: NodeProcess, c: Case): Promise<void> {
  if (c.way === "node") p.kill(c.sig);
  else p.killGroup(c.sig);
  if (c.way === "twice") {
    // 100 ms later: late enough that the kernel does not merge the two, well inside the 1 s window.
    await new Promise((r) => setTimeout(r, 100));
    p.kill(c.sig);
  }
}

/** The process group of `pid` (field 5 of /proc/PID/stat). */
function pgidOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

/** The ffmpeg processes below `p`; each must lead its own process group (not the node's, not the test's). */
async function ffmpegChildren(p: NodeProcess): Promise<ProcInfo[]> {
  const procs = (await descendants(p.child.pid)).filter((x) => /(^|\/)ffmpeg /.test(x.cmd));
  for (const f of procs) assert.equal(pgidOf(f.pid), f.pid, `ffmpeg ${f.pid} leads its own process group`);
  return procs;
}

/** The common verdict: exit 0, one graceful stop, the duplicate signal not taken as "exit now", no error line. */
async function assertGraceful(p: NodeProcess, c: Case): Promise<void> {
  const code = await p.exit;
  const lines = [...p.stdout, ...p.stderr];
  assert.equal(code, 0, `exit code ${code}:\n${lines.slice(-15).join("\n")}`);
  assert.equal(lines.filter((l) => new RegExp(`received ${c.sig}: stopping`).test(l)).length, 1);
  assert.ok(!lines.some((l) => /exiting now|ERROR|CRITICAL/.test(l)), lines.slice(-15).join("\n"));
  assert.ok(lines.some((l) => / :: stopped$/.test(l)), "logs that it stopped");
}

async function metric(port: number, name: string): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    // The sum over every label set of `msight_<name>`.
    const re = new RegExp(`^msight_${name}(\\{| )`);
    return text.split("\n").filter((l) => re.test(l)).reduce(
      (sum, l) => sum + Number(l.split(" ").at(-1)),
      0,
    );
  } catch {
    return 0; // not serving yet
  }
}

const FRAMES = new URL("../fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
const ids = new Snowflake(91);

async function frameJpegs(n: number): Promise<Uint8Array[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(FRAMES)) names.push(e.name);
  return await Promise.all(names.sort().slice(0, n).map((f) => Deno.readFile(FRAMES + f)));
}

async function withRedis(fn: (redis: TestRedis, r: Redis) => Promise<void>): Promise<void> {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    await fn(redis, r);
  } finally {
    r.disconnect();
    await redis.stop();
  }
}

const OPTS = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "signals: the aggregator publishes its partial segment however it is signalled",
  ...OPTS,
  fn: (t) =>
    withRedis(async (redis, pub) => {
      const jpegs = await frameJpegs(12);
      for (const c of CASES) {
        await t.step(c.label, async () => {
          const tag = `${c.way}_${c.sig}`.toLowerCase();
          const sub = new Redis({ host: "127.0.0.1", port: redis.port });
          const segments: VideoData[] = [];
          sub.on("messageBuffer", (_c: Buffer, m: Buffer) => segments.push(decodeMessage(m) as VideoData));
          await sub.subscribe(`video_${tag}`);
          const metricsPort = freePort();
          // --max-idle 60: only the signal may close the segment.
          const args = ["-n", `agg_${tag}`, "-st", `frames_${tag}`, "-pt", `video_${tag}`, "--fps", "10"];
          args.push("--buffer-size", "50", "--overlap-size", "0", "--max-idle", "60");
          args.push("--metrics-port", String(metricsPort));
          const node = launch(c, "aggregator", args, redis.env);
          try {
            await node.waitForLine(/aggregating frames_/, 30_000);
            // Capture times 0.7 s apart span past the aggregator's 6 s start-up probe (src/aggregate/segmenter.ts), so
            // frames reach the encoder before the signal.
            const t0 = Date.now() / 1000 - 10;
            for (let i = 0; i < jpegs.length; i++) {
              const img: ImageData = {
                dataType: IMAGE_DATA_TYPE,
                sensorName: "cam",
                captureTimestamp: t0 + i * 0.7,
                creationTimestamp: t0 + i * 0.7 + 0.01,
                frameId: ids.next(),
                deviceName: "cam-box",
                image: jpegs[i],
                isEncoded: true,
                detectionResults: null,
                size: [960, 1280, 3],
              };
              await pub.publish(`frames_${tag}`, Buffer.from(encodeMessage(img)));
            }
            await waitFor(
              async () => await metric(metricsPort, "messages_received_total") >= jpegs.length,
              15_000,
              "the frames received",
            );
            await waitFor(async () => (await ffmpegChildren(node)).length > 0, 15_000, "the encoder running");
            const encoders = await ffmpegChildren(node);
            await send(node, c);
            await assertGraceful(node, c);
            await waitFor(() => segments.length === 1, 5_000, "the partial segment");
            assert.equal(segments[0].info!.flushReason, "shutdown");
            assert.equal(segments[0].frameIds.length, jpegs.length);
            assert.deepEqual(await running(encoders), [], "the encoder is gone");
          } finally {
            sub.disconnect();
            await node.stop();
          }
        });
      }
    }),
});

Deno.test({
  name: "signals: the dumper finishes its writes however it is signalled",
  ...OPTS,
  fn: (t) =>
    withRedis(async (redis, pub) => {
      const segs = await Promise.all([0, 1, 2].map((i) => makeSegment("cam", 1769272125 + i * 10, 30)));
      for (const c of CASES) {
        await t.step(c.label, async () => {
          const tag = `${c.way}_${c.sig}`.toLowerCase();
          const dir = await Deno.makeTempDir({ prefix: "msight-sig-dumper-" });
          const metricsPort = freePort();
          const node = launch(c, "dumper", [
            "-n",
            `dump_${tag}`,
            "-st",
            `video_${tag}`,
            "--save-dir",
            dir,
            "--metrics-port",
            String(metricsPort),
          ], redis.env);
          try {
            await node.waitForLine(/reading video_/, 30_000);
            for (const s of segs) await pub.publish(`video_${tag}`, Buffer.from(encodeMessage(s)));
            await waitFor(
              async () => await metric(metricsPort, "messages_received_total") >= 3,
              15_000,
              "3 received",
            );
            await send(node, c);
            await assertGraceful(node, c);
            const names: string[] = [];
            for await (const e of Deno.readDir(dir)) names.push(e.name);
            assert.equal(names.filter((n) => n.endsWith(".mp4")).length, 3, names.join(" "));
            assert.equal(names.filter((n) => n.endsWith(".json")).length, 3, names.join(" "));
            assert.ok(!names.some((n) => n.includes(".tmp") || n.startsWith(".")), names.join(" "));
          } finally {
            await node.stop();
            await Deno.remove(dir, { recursive: true });
          }
        });
      }
    }),
});

Deno.test({
  name: "signals: the pusher drains its outbox for --drain-timeout however it is signalled",
  ...OPTS,
  fn: (t) =>
    withRedis(async (redis, pub) => {
      const seg = await makeSegment("cam", 1769272125);
      const deadS3 = freePort(); // nothing listens: the drain can only wait out --drain-timeout
      const env = {
        ...redis.env,
        AWS_ACCESS_KEY_ID: "k",
        AWS_SECRET_ACCESS_KEY: "s",
        AWS_EC2_METADATA_DISABLED: "true",
      };
      for (const c of CASES) {
        await t.step(c.label, async () => {
          const tag = `${c.way}_${c.sig}`.toLowerCase();
          const spool = await Deno.makeTempDir({ prefix: "msight-sig-pusher-" });
          const node = launch(c, "pusher", [
            "-n",
            `push_${tag}`,
            "-st",
            `video_${tag}`,
            "--bucket-name",
            "b",
            "--endpoint-url",
            `http://127.0.0.1:${deadS3}`,
            "--spool-dir",
            spool,
            "--transport",
            "pubsub",
            "--drain-timeout",
            "3",
          ], env);
          try {
            await node.waitForLine(/reading video_\S+ over plain pub\/sub/, 30_000);
            await pub.publish(`video_${tag}`, Buffer.from(encodeMessage(seg)));
            await node.waitForLine(/queued .* for upload/);
            const t0 = Date.now();
            await send(node, c);
            await assertGraceful(node, c);
            const lines = [...node.stdout, ...node.stderr];
            assert.ok(lines.some((l) => /uploading the 1 segment\(s\) in the outbox for up to 3 s/.test(l)));
            assert.ok(lines.some((l) => /1 segment\(s\) stay in the outbox/.test(l)));
            // It waited out the drain (the duplicate signal did not cut it short).
            assert.ok(Date.now() - t0 >= 2500, `drained ${Date.now() - t0} ms`);
            let kept = 0;
            for await (const e of Deno.readDir(spool)) if (e.name.endsWith(".mp4")) kept++;
            assert.ok(kept >= 1, "the segment stays in the spool for the next start");
          } finally {
            await node.stop();
            await Deno.remove(spool, { recursive: true });
          }
        });
      }
    }),
});

Deno.test({
  name: "signals: the RTSP node stops its own ffmpeg however it is signalled",
  ...OPTS,
  fn: (t) =>
    withRedis(async (redis) => {
      const cam = await startRtspServer({ source: "mcity", path: `/sig-${crypto.randomUUID().slice(0, 8)}` });
      try {
        for (const c of CASES) {
          await t.step(c.label, async () => {
            const tag = `${c.way}_${c.sig}`.toLowerCase();
            const sub = new Redis({ host: "127.0.0.1", port: redis.port });
            let frames = 0;
            sub.on("messageBuffer", () => frames++);
            await sub.subscribe(`rtsp_${tag}`);
            const args = ["-n", `rtsp_${tag}`, "-pt", `rtsp_${tag}`, "-sn", "cam", "-u", cam.url];
            args.push("--frame-log-every", "0");
            const node = launch(c, "rtsp", args, redis.env);
            try {
              await waitFor(() => frames >= 3, 30_000, "frames on the bus");
              const ffmpeg = await ffmpegChildren(node);
              assert.equal(ffmpeg.length, 1, ffmpeg.map((p) => p.cmd).join("\n"));
              await send(node, c);
              await assertGraceful(node, c);
              const lines = [...node.stdout, ...node.stderr];
              // ffmpeg did not die under the node (which would be logged and followed by a reconnect).
              assert.ok(!lines.some((l) => /WARNING|reconnect/.test(l)), lines.slice(-10).join("\n"));
              assert.deepEqual(await running(ffmpeg), [], "ffmpeg is gone");
            } finally {
              sub.disconnect();
              await node.stop();
            }
          });
        }
      } finally {
        await cam.stop();
      }
    }),
});

Deno.test({
  name:
    "signals: an RTSP process of two cameras (--next) stops both, and their ffmpegs, however it is signalled",
  ...OPTS,
  fn: (t) =>
    withRedis(async (redis) => {
      const cam = await startRtspServer({
        source: "mcity",
        path: `/sig-grp-${crypto.randomUUID().slice(0, 8)}`,
      });
      try {
        for (const c of CASES) {
          await t.step(c.label, async () => {
            const tag = `grp_${c.way}_${c.sig}`.toLowerCase();
            const sub = new Redis({ host: "127.0.0.1", port: redis.port });
            const frames = new Map<string, number>();
            sub.on("messageBuffer", (_c: Buffer, m: Buffer) => {
              const s = (decodeMessage(m) as ImageData).sensorName;
              frames.set(s, (frames.get(s) ?? 0) + 1);
            });
            await sub.subscribe(`rtsp_${tag}`);
            const one = (
              n: number,
            ) => ["-n", `${tag}_${n}`, "-pt", `rtsp_${tag}`, "-sn", `cam${n}`, "-u", cam.url];
            const args = [...one(1), "--frame-log-every", "0", "--next", ...one(2), "--frame-log-every", "0"];
            const node = launch(c, "rtsp", args, redis.env);
            try {
              await waitFor(
                () => (frames.get("cam1") ?? 0) >= 3 && (frames.get("cam2") ?? 0) >= 3,
                30_000,
                "frames of both cameras",
              );
              const ffmpeg = await ffmpegChildren(node);
              assert.equal(ffmpeg.length, 2, ffmpeg.map((p) => p.cmd).join("\n"));
              await send(node, c);
              const code = await node.exit;
              const lines = [...node.stdout, ...node.stderr];
              assert.equal(code, 0, `exit code ${code}:\n${lines.slice(-15).join("\n")}`);
              for (const n of [1, 2]) {
                const own = lines.filter((l) => l.includes(` - ${tag}_${n} - `));
                assert.equal(own.filter((l) => new RegExp(`received ${c.sig}: stopping`).test(l)).length, 1);
                assert.ok(own.some((l) => / :: stopped$/.test(l)), `node ${n} logs that it stopped`);
              }
              assert.ok(
                !lines.some((l) => /exiting now|WARNING|ERROR|CRITICAL/.test(l)),
                lines.slice(-15).join("\n"),
              );
              assert.deepEqual(await running(ffmpeg), [], "both ffmpegs are gone");
            } finally {
              sub.disconnect();
              await node.stop();
            }
          });
        }
      } finally {
        await cam.stop();
      }
    }),
});
