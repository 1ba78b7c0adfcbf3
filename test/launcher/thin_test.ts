/**
 * Thinning at the source under `deno task up`, end to end: a real 25 fps RTSP camera (GStreamer), a real Redis, the
 * rtsp node without `max-fps` in the file and an aggregator at `--fps 10`. `up` gives the rtsp node `--max-fps 10`;
 * the node then publishes 10 frames a second, and every frame it published is in exactly one segment: none thinned,
 * late or duplicate in the aggregator, and every 1/10 s slot of every MP4 holds its frame.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { decodeMessage } from "../../src/bus/wire.ts";
import type { ImageData } from "../../src/bus/message.ts";
import { probeMp4 } from "../helpers/ffprobe.ts";
import { jsonFiles } from "../helpers/launcher.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { DENO, type NodeProcess, startProcess } from "../helpers/process.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";

Deno.test({
  name:
    "up: a 25 fps camera is thinned to the aggregator's --fps 10 at the source, and every published frame is in a segment",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "msight-thin-" });
    const saveDir = `${dir}/videos`;
    const redis = await startRedis();
    const camera = await startRtspServer({
      source: "synthetic",
      width: 320,
      height: 240,
      fps: 25,
      path: `/thin-${crypto.randomUUID().slice(0, 8)}`,
    });
    // Every frame the rtsp node publishes, seen by a subscriber that is there before the node starts.
    const sub = new Redis({ host: "127.0.0.1", port: redis.port });
    const published: ImageData[] = [];
    sub.on(
      "messageBuffer",
      (_c: Buffer, m: Buffer) => published.push(decodeMessage(new Uint8Array(m)) as ImageData),
    );
    await sub.subscribe("rtsp_topic");
    const metricsPort = await freePort();
    let up: NodeProcess | undefined;
    try {
      const file = `${dir}/pipeline.yaml`;
      await Deno.writeTextFile(
        file,
        `redis: ${redis.url}
device: thin-test
nodes:
  - name: rtsp_node
    node: rtsp
    flags: {publish-topic: rtsp_topic, sensor-name: cam, url: "${camera.url}", frame-log-every: 0}
  - name: image-aggregator
    node: aggregator
    flags:
      subscribe-topic: rtsp_topic
      publish-topic: aggregated_video
      fps: 10
      buffer-size: 20
      overlap-size: 0
      metrics-port: ${metricsPort}
  - name: video_dumper
    node: dumper
    flags: {subscribe-topic: aggregated_video, save-dir: "${saveDir}"}
`,
      );
      up = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", file], {});
      const u = up;
      await u.waitForLine(
        /^up +\| rtsp_node: --max-fps 10, as image-aggregator \(--fps 10\) reads rtsp_topic/,
        20_000,
      );
      await u.waitForLine(/^up +\| started 3 node\(s\)/, 20_000);
      // Five segments of 20 frames (10 s of camera) on disk.
      await waitFor(async () => (await jsonFiles(saveDir)).length >= 5, 90_000, "five segments on disk");

      // The aggregator dropped nothing: no thinned, late or duplicate frame (a counter appears with its first count).
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
      assert.match(metrics, /msight_frames_accounted_total\{[^}]*outcome="segment"[^}]*\} [1-9]/);
      const drops = metrics.split("\n").filter((l) =>
        /^msight_frames_(dropped|accounted)_total\{/.test(l) && !/outcome="segment"/.test(l) && !/ 0$/.test(l)
      );
      assert.deepEqual(drops, [], "frames the aggregator did not use");

      // SIGTERM: the rtsp node stops first, the aggregator flushes its partial segment, the dumper saves it.
      u.kill("SIGTERM");
      assert.equal(await u.exit, 0);
      sub.disconnect();

      // The camera's 25 fps came out of the rtsp node at 10 (past the first second, when the capture clock settles).
      const steady = published.slice(10);
      const span = steady.at(-1)!.captureTimestamp - steady[0].captureTimestamp;
      const rate = (steady.length - 1) / span;
      assert.ok(rate > 9 && rate < 11, `published ${steady.length} frames over ${span.toFixed(1)} s`);

      // Every frame published from the first one aggregated to the last is in one segment, in order; nothing else is.
      const segments: bigint[][] = [];
      for (const name of await jsonFiles(saveDir)) {
        const text = await Deno.readTextFile(`${saveDir}/${name}`);
        // As text: the 64-bit ids lose digits through JSON.parse.
        const ids = text.match(/"frame_ids": ?\[([^\]]*)\]/)![1].split(",").map((s) => BigInt(s.trim()));
        segments.push(ids);
        // No empty 1/10 s slot: the MP4's frames are 0.1 s apart, each.
        const probe = await probeMp4(await Deno.readFile(`${saveDir}/${name.replace(/\.json$/, ".mp4")}`));
        const pts = [...probe.pts].sort((a, b) => a - b);
        assert.equal(pts.length, ids.length);
        assert.ok(
          pts.every((p, i) => Math.abs(p - pts[0] - i / 10) < 0.002),
          `${name}: frame times ${pts.map((p) => p.toFixed(2)).join(" ")}`,
        );
      }
      segments.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      const inSegments = segments.flat();
      const ids = published.map((f) => f.frameId);
      const from = ids.indexOf(inSegments[0]);
      assert.ok(from >= 0, "the first aggregated frame was published");
      assert.deepEqual(
        inSegments.map(String),
        ids.slice(from).map(String),
        `${
          ids.length - from
        } frames published from the first aggregated one, ${inSegments.length} in segments`,
      );
      console.log(
        `${published.length} frames published at ${
          rate.toFixed(2)
        } fps, ${inSegments.length} in ${segments.length} ` +
          `segments (the first ${from} published before the aggregator read the topic)`,
      );
    } finally {
      sub.disconnect();
      await up?.stop();
      await camera.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
