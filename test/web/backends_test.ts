/**
 * The console on the other back ends of the bus, in a real browser (Debian's headless Chromium): on NATS alone (the
 * registry in JetStream KV), on NATS with the registry in Redis (as MSight keeps it), and on a 3 + 3 Redis Cluster,
 * our rtsp node publishes the real RTSP test camera, and the page lists the nodes (running, with the rtsp node's
 * figures) and shows the camera's live preview, which keeps changing. The registry is read where that back end keeps
 * it (JetStream KV, Redis' `MSIGHT:NODES`, the cluster), and the console leaves it when stopped.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { startNats, type TestNats } from "../helpers/nats_server.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { type NodeProcess, startNode } from "../helpers/process.ts";
import { freePort } from "../helpers/net.ts";
import { hasChromium, launchChromium } from "../helpers/chromium.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { NODES_KEY } from "../../src/bus/registry.ts";
import { selectBus } from "../../src/bus/select.ts";
import { Logger } from "../../src/runtime/log.ts";

/** A back end the test starts: the environment the nodes get, how the web node names it, and how to stop it. */
interface Backend {
  env: Record<string, string>;
  /** The web node's start line names the bus it runs on. */
  started: RegExp;
  /** The names in the registry, read where this back end keeps it. */
  registered(): Promise<string[]>;
  stop(): Promise<void>;
}

const quiet = () => new Logger({ device: "t", node: "t", level: "CRITICAL", sink: () => {} });

/** The registry as the bus at `url` (no Redis configured) keeps it: JetStream KV for NATS, the cluster's hash. */
async function registryOf(url: string): Promise<Pick<Backend, "registered"> & { close(): Promise<void> }> {
  const bus = await connectBus(selectBus({ busUrl: url, env: () => undefined }), quiet(), { name: "t" });
  return {
    registered: async () => (await bus.registry.readNodes()).map((e) => e.name).sort(),
    close: () => bus.close(),
  };
}

async function natsAlone(): Promise<Backend> {
  const nats = await startNats();
  const reg = await registryOf(nats.url).catch(async (err) => {
    await nats.stop();
    throw err;
  });
  return {
    env: nats.env,
    started: new RegExp(`started on device test-device \\(NATS nats://127\\.0\\.0\\.1:${nats.port}\\)`),
    registered: reg.registered,
    async stop() {
      await reg.close();
      await nats.stop();
    },
  };
}

async function natsWithRedisRegistry(): Promise<Backend> {
  let nats: TestNats | undefined;
  const redis = await startRedis();
  try {
    nats = await startNats();
  } catch (err) {
    await redis.stop();
    throw err;
  }
  const n = nats;
  // Read as MSight's `msight_status` would: the hash in Redis.
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  return {
    // REDIS_URL beside MSIGHT_PUBSUB_BACKEND=nats: frames on NATS, MSIGHT:NODES and MSIGHT:TOPICS in Redis.
    env: { ...redis.env, ...n.env },
    started: new RegExp(`started on device test-device \\(NATS nats://127\\.0\\.0\\.1:${n.port}\\)`),
    registered: async () => (await r.hkeys(NODES_KEY)).sort(),
    async stop() {
      r.disconnect();
      await n.stop();
      await redis.stop();
    },
  };
}

async function redisCluster(): Promise<Backend> {
  const c = await startRedisCluster();
  const reg = await registryOf(c.url).catch(async (err) => {
    await c.stop();
    throw err;
  });
  return {
    env: { MSIGHT_BUS_URL: c.url, MSIGHT_EDGE_DEVICE_NAME: "test-device" },
    started: /started on device test-device \(Redis Cluster redis\+cluster:\/\/127\.0\.0\.1:\d+/,
    registered: reg.registered,
    async stop() {
      await reg.close();
      await c.stop();
    },
  };
}

const CASES: [string, () => Promise<Backend>][] = [
  ["NATS alone (registry in JetStream KV)", natsAlone],
  ["NATS with the registry in Redis", natsWithRedisRegistry],
  ["a Redis Cluster (3 masters + 3 replicas)", redisCluster],
];

for (const [label, start] of CASES) {
  Deno.test({
    name: `web console in Chromium on ${label}: the node list and a live preview from the rtsp node`,
    sanitizeResources: false,
    async fn() {
      assert.ok(hasChromium(), "no /usr/bin/chromium: install the test profile (scripts/setup.sh test)");
      const be = await start();
      const cam = await startRtspServer({ source: "mcity", path: "/web-backends.stream" });
      const [pRtsp, pWeb] = [freePort(), freePort()];
      const beat = ["--heartbeat-update-interval", "1"];
      const nodes: Record<string, NodeProcess> = {};
      let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
      let page: Awaited<ReturnType<NonNullable<typeof browser>["newPage"]>> | undefined;
      try {
        nodes.rtsp = startNode(
          "nodes/rtsp.ts",
          [
            "-n",
            "rtsp_node",
            "-pt",
            "rtsp_topic",
            "-sn",
            "cam_ne",
            "-u",
            cam.url,
            "--metrics-port",
            `${pRtsp}`,
            ...beat,
          ],
          be.env,
          ["--no-prompt", ...permissionFlags("rtsp")],
        );
        nodes.web = startNode(
          "nodes/web.ts",
          [
            ...["-n", "console", "--port", `${pWeb}`, ...beat],
            ...["--metrics-urls", `rtsp_node=http://127.0.0.1:${pRtsp}/metrics`],
          ],
          be.env,
          ["--no-prompt", ...permissionFlags("web")],
        );
        await nodes.web.waitForLine(/console on http:\/\/127\.0\.0\.1:\d+\//, 40_000);
        assert.ok(nodes.web.stderr.some((l) => be.started.test(l)), nodes.web.stderr.join("\n"));
        browser = await launchChromium();
        page = await browser.newPage(1280, 800);
        await page.goto(`http://127.0.0.1:${pWeb}/`);

        // Nodes: the rtsp node and the console itself, read from the back end's registry, running.
        await page.waitFor(
          `["rtsp_node", "console"].every((n) =>
            document.querySelector('#nodes tr[data-node="' + n + '"]')?.dataset.status === "RUNNING")`,
          60_000,
          "rtsp_node and console shown RUNNING",
        );
        const row = await page.evaluate<string>(
          `document.querySelector('#nodes tr[data-node="rtsp_node"]').textContent`,
        );
        assert.match(row, /rtsp_topic/);
        await page.waitFor(
          `Number(document.querySelector('#nodes tr[data-node="rtsp_node"] td:nth-child(8)').textContent) > 0`,
          30_000,
          "rtsp_node's frames/s out from its /metrics",
        );

        // Cameras: the topic found in the registry, the frames read from the bus, the preview changing.
        await page.evaluate(`location.hash = "#cameras"`);
        const fig = `document.querySelector('#cams figure[data-sensor="cam_ne"]')`;
        const first = await page.waitFor<string>(
          `${fig}?.dataset.topic === "rtsp_topic" && ${fig}.querySelector("img").naturalWidth === 1280 &&
            ${fig}.dataset.frameId`,
          40_000,
          "a first 1280-pixel-wide preview frame shown",
        );
        // A loaded machine may be slow to fetch the next one: the point is that it changes, not how fast.
        await page.waitFor(
          `${fig}.dataset.frameId !== "${first}" && ${fig}.querySelector("img").complete &&
            ${fig}.querySelector("img").naturalWidth === 1280`,
          20_000,
          "the preview changes",
        );
        assert.notEqual(await page.evaluate<string>(`${fig}.dataset.stale`), "true");

        // The page showed the registry where this back end keeps it; the console leaves it on a clean stop.
        assert.deepEqual(await be.registered(), ["console", "rtsp_node"]);
        nodes.web.kill("SIGTERM");
        assert.equal(await nodes.web.exit, 0, nodes.web.stderr.join("\n"));
        assert.deepEqual(await be.registered(), ["rtsp_node"]);
        nodes.rtsp.kill("SIGTERM");
        assert.equal(await nodes.rtsp.exit, 0, nodes.rtsp.stderr.join("\n"));
      } catch (err) {
        const body = await page?.evaluate<string>("document.body.innerText").catch((e) => String(e));
        console.error(`page:\n${body}`);
        for (const [n, p] of Object.entries(nodes)) console.error(`${n}:\n${p.stderr.slice(-10).join("\n")}`);
        throw err;
      } finally {
        await browser?.close();
        for (const p of Object.values(nodes)) await p.stop();
        await cam.stop();
        await be.stop();
      }
    },
  });
}
