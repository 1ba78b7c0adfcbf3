/**
 * The README's systemd unit, read from the README itself: systemd accepts it (`systemd-analyze verify`), it says
 * `KillMode=mixed` with a stop timeout longer than the node's grace period, and its `ExecStart` stopped the way
 * systemd stops a `mixed` unit (SIGTERM to the main process only, SIGKILL to what is left of the service once it
 * has exited) flushes the aggregator's partial segment and leaves nothing for the SIGKILL.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis } from "../helpers/redis_server.ts";
import { ROOT, startProcess } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { descendants } from "../helpers/launcher.ts";
import { decodeMessage, encodeMessage } from "../../src/bus/wire.ts";
import { IMAGE_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";
import { COMMON_FLAGS } from "../../src/node/common_flags.ts";

/** The `ini` block of the README's "Signals, systemd and Docker" section, and its `[Service]` keys. */
async function readmeUnit(): Promise<{ text: string; service: Map<string, string> }> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## Signals, systemd and Docker"));
  const text = section.match(/```ini\n([\s\S]*?)```/)?.[1];
  assert.ok(text, "the README has a systemd unit in its signals section");
  const service = new Map<string, string>();
  let inService = false;
  for (const line of text.split("\n")) {
    if (/^\[.*\]$/.test(line)) inService = line === "[Service]";
    const kv = line.match(/^(\w+)=(.*)$/);
    if (inService && kv) service.set(kv[1], kv[2]);
  }
  return { text, service };
}

/** The unit with `/opt/msight-edge` pointing at this checkout. */
function localize(text: string): string {
  return text.replaceAll("/opt/msight-edge/", ROOT);
}

Deno.test("systemd unit: systemd-analyze verify accepts the README's unit; KillMode=mixed, SIGTERM, time to flush", async () => {
  const { text, service } = await readmeUnit();
  assert.equal(service.get("KillMode"), "mixed", "SIGTERM to the node only (see the README)");
  assert.equal(service.get("KillSignal"), "SIGTERM");
  const grace = COMMON_FLAGS.shutdownGrace.default;
  assert.ok(Number(service.get("TimeoutStopSec")) >= grace + 10, "TimeoutStopSec exceeds --shutdown-grace");
  const dir = await Deno.makeTempDir({ prefix: "msight-unit-" });
  try {
    const file = `${dir}/msight-aggregator.service`;
    await Deno.writeTextFile(file, localize(text));
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", file],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const said = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    assert.ok(out.success, said);
    assert.equal(said.trim(), "", "systemd has nothing to say about the unit");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "systemd unit: its ExecStart, stopped as KillMode=mixed does, publishes the partial segment; nothing left to kill",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { service } = await readmeUnit();
    const redis = await startRedis();
    const pub = new Redis({ host: "127.0.0.1", port: redis.port });
    const sub = new Redis({ host: "127.0.0.1", port: redis.port });
    const segments: VideoData[] = [];
    sub.on("messageBuffer", (_c: Buffer, m: Buffer) => segments.push(decodeMessage(m) as VideoData));
    const env: Record<string, string> = { ...redis.env };
    const [k, v] = service.get("Environment")!.split("=");
    env[k] = v;
    const [cmd, ...args] = localize(service.get("ExecStart")!).split(" ");
    const topicIn = args[args.indexOf("-st") + 1];
    const topicOut = args[args.indexOf("-pt") + 1];
    await sub.subscribe(topicOut);
    const metricsPort = freePort();
    // For the test: where to see that the frames arrived, and no idle close before the stop.
    args.push("--metrics-port", String(metricsPort), "--max-idle", "60");
    // Its own session stands for the service's cgroup.
    const node = startProcess(cmd, args, env, ROOT, { detached: true });
    try {
      await node.waitForLine(/aggregating /, 30_000);
      // The launchers exec Deno: the main process systemd signals is the node itself.
      const cmdline = Deno.readTextFileSync(`/proc/${node.child.pid}/cmdline`).split("\0").join(" ");
      assert.match(cmdline, /nodes\/aggregator\.ts/);
      const ids = new Snowflake(93);
      const frames = 12;
      const jpeg = await Deno.readFile(`${ROOT}test/fixtures/mcity-gs-ne/frames/${await firstFrame()}`);
      const t0 = Date.now() / 1000 - 5;
      for (let i = 0; i < frames; i++) {
        await pub.publish(
          topicIn,
          Buffer.from(encodeMessage({
            dataType: IMAGE_DATA_TYPE,
            sensorName: "cam",
            captureTimestamp: t0 + i * 0.1,
            creationTimestamp: t0 + i * 0.1 + 0.01,
            frameId: ids.next(),
            deviceName: "cam-box",
            image: jpeg,
            isEncoded: true,
            detectionResults: null,
            size: [960, 1280, 3],
          })),
        );
      }
      await waitFor(
        async () => {
          const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text(), () => "");
          return /^msight_messages_received_total\S* 12$/m.test(text);
        },
        15_000,
        "the frames received",
      );
      const group = await descendants(node.child.pid);
      assert.ok(group.some((p) => /ffmpeg/.test(p.cmd)), "the encoder runs");
      node.kill("SIGTERM"); // KillMode=mixed: the main process only
      const timeout = Number(service.get("TimeoutStopSec")) * 1000;
      const code = await Promise.race([
        node.exit,
        new Promise<number>((r) => setTimeout(() => r(-1), timeout)),
      ]);
      const lines = [...node.stdout, ...node.stderr];
      assert.equal(code, 0, lines.slice(-10).join("\n"));
      // What systemd's SIGKILL would find: nothing of the service's processes.
      const left = group.filter((p) => {
        try {
          return Deno.readTextFileSync(`/proc/${p.pid}/cmdline`).length > 0;
        } catch {
          return false;
        }
      });
      assert.deepEqual(left, []);
      await waitFor(() => segments.length === 1, 5_000, "the partial segment");
      assert.equal(segments[0].info!.flushReason, "shutdown");
      assert.equal(segments[0].frameIds.length, frames);
    } finally {
      await node.stop();
      pub.disconnect();
      sub.disconnect();
      await redis.stop();
    }
  },
});

async function firstFrame(): Promise<string> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}test/fixtures/mcity-gs-ne/frames/`)) names.push(e.name);
  return names.sort()[0];
}
