/**
 * Previews as MSight's own nodes publish them, against the real web node and Redis: MSight's wire fixtures (a JPEG
 * frame and a raw BGR frame) on two registered ImageData topics are shown, the JPEG as its exact bytes and the raw
 * frame as a PNG of the same pixels; a malformed message is counted and logged, and the console goes on.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis } from "../helpers/redis_server.ts";
import { startNode } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { decodeMessage } from "../../src/bus/wire.ts";
import type { ImageData } from "../../src/bus/message.ts";
import { IMAGE_DATA_TYPE } from "../../src/bus/message.ts";
import { TOPICS_KEY } from "../../src/bus/registry.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";

const FIXTURES = new URL("../fixtures/msight-wire/", import.meta.url).pathname;

async function decodePng(png: Uint8Array): Promise<Uint8Array> {
  const p = new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(png);
  await w.close();
  return (await p.output()).stdout;
}

Deno.test("web previews: MSight's JPEG frame as it is, its raw BGR frame as a PNG of the same pixels; bad messages counted", async () => {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  const port = freePort();
  const metricsPort = freePort();
  const node = startNode(
    "nodes/web.ts",
    ["-n", "console", "--port", `${port}`, "--metrics-port", `${metricsPort}`],
    redis.env,
    ["--no-prompt", ...permissionFlags("web")],
  );
  const base = `http://127.0.0.1:${port}`;
  try {
    for (const t of ["jpeg_topic", "raw_topic"]) {
      await r.hset(TOPICS_KEY, t, JSON.stringify({ name: t, description: null, data_type: IMAGE_DATA_TYPE }));
    }
    await node.waitForLine(/console on http:/, 20_000);
    const jpegBytes = await Deno.readFile(`${FIXTURES}image_jpeg.msgpack`);
    const rawBytes = await Deno.readFile(`${FIXTURES}image_raw.msgpack`);
    // The console looks up topics every 5 s: publish until both cameras are shown.
    await waitFor(
      async () => {
        await r.publish("jpeg_topic", Buffer.from(jpegBytes));
        await r.publish("raw_topic", Buffer.from(rawBytes));
        await r.publish("raw_topic", Buffer.from([0xc1, 0x00]));
        const cams = await (await fetch(`${base}/api/cameras`)).json() as { topic: string }[];
        return cams.length === 2;
      },
      20_000,
      "both cameras shown",
    );
    const cams = await (await fetch(`${base}/api/cameras`)).json() as {
      topic: string;
      sensor: string;
      encoded: boolean;
      width: number;
      height: number;
      frameId: string;
    }[];
    const jpegMsg = decodeMessage(jpegBytes) as ImageData;
    const rawMsg = decodeMessage(rawBytes) as ImageData;
    assert.deepEqual(cams.map((c) => [c.topic, c.sensor, c.encoded]), [
      ["jpeg_topic", "test_camera", true],
      ["raw_topic", "test_camera", false],
    ]);
    assert.equal(cams[1].frameId, String(rawMsg.frameId));

    const jpeg = await fetch(`${base}/api/preview?topic=jpeg_topic&sensor=test_camera`);
    assert.equal(jpeg.headers.get("content-type"), "image/jpeg");
    const etag = jpeg.headers.get("etag")!;
    assert.deepEqual(new Uint8Array(await jpeg.arrayBuffer()), jpegMsg.image);
    const again = await fetch(`${base}/api/preview?topic=jpeg_topic&sensor=test_camera`, {
      headers: { "if-none-match": etag },
    });
    await again.body?.cancel();
    assert.equal(again.status, 304);

    const png = await fetch(`${base}/api/preview?topic=raw_topic&sensor=test_camera`);
    assert.equal(png.headers.get("content-type"), "image/png");
    assert.deepEqual(await decodePng(new Uint8Array(await png.arrayBuffer())), rawMsg.image);

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, /msight_messages_malformed_total\{kind="[a-z_]+",topic="raw_topic"\} [1-9]/);
    assert.ok(node.stderr.some((l) => /dropped a malformed message on raw_topic/.test(l)));
    node.kill("SIGTERM");
    assert.equal(await node.exit, 0);
  } finally {
    r.disconnect();
    await node.stop();
    await redis.stop();
  }
});
