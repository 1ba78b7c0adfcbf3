/**
 * The console in a real browser (Debian's headless Chromium) against a real pipeline: GStreamer RTSP camera → rtsp
 * → aggregator → dumper on a private Redis, and the web node browsing the dumper's directory. Screenshots of each
 * view go to a temporary directory (MSIGHT_SCREENSHOTS=DIR keeps them; docs/console.png was taken this way).
 */
import assert from "node:assert/strict";
import { startRedis } from "../helpers/redis_server.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { startNode } from "../helpers/process.ts";
import { freePort } from "../helpers/net.ts";
import { hasChromium, launchChromium } from "../helpers/chromium.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";

const HEVC_STEM = "cam_hevc_20260101_000000_000000";

/** A short real HEVC segment and its .json, as MSight's aggregator (HEVC by default) would leave them. */
async function writeHevcSegment(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const frames = new URL("../fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
  const out = await new Deno.Command("ffmpeg", {
    args: [
      ...["-v", "error", "-y", "-framerate", "10", "-i", `${frames}%04d.jpg`, "-frames:v", "10"],
      ...["-vf", "scale=320:240", "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"],
      ...["-pix_fmt", "yuv420p", "-movflags", "+faststart", `${dir}/${HEVC_STEM}.mp4`],
    ],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  await Deno.writeTextFile(
    `${dir}/${HEVC_STEM}.json`,
    JSON.stringify({
      sensor_name: "cam_hevc",
      codec: "hevc",
      start: "2026-01-01T00:00:00.000000Z",
      end: "2026-01-01T00:00:01.000000Z",
    }),
  );
}

Deno.test({
  name:
    "web console in Chromium: nodes running, a live preview, a recording plays, a gap on the timeline, a killed node stopped",
  sanitizeResources: false,
  async fn() {
    assert.ok(hasChromium(), "no /usr/bin/chromium: install the test profile (scripts/setup.sh test)");
    const redis = await startRedis();
    const cam = await startRtspServer({ source: "mcity", path: "/web.stream" });
    const root = await Deno.makeTempDir({ prefix: "msight-web-" });
    const shots = Deno.env.get("MSIGHT_SCREENSHOTS") ?? `${root}/shots`;
    await Deno.mkdir(shots, { recursive: true });
    const saveDir = `${root}/videos`;
    await writeHevcSegment(saveDir);
    const [pRtsp, pAgg, pDump, pWeb] = [freePort(), freePort(), freePort(), freePort()];
    const beat = ["--heartbeat-update-interval", "1"];
    const rtsp = startNode(
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
      redis.env,
      ["--no-prompt", ...permissionFlags("rtsp")],
    );
    const agg = startNode(
      "nodes/aggregator.ts",
      [
        ...[
          "-n",
          "aggregator",
          "-st",
          "rtsp_topic",
          "-pt",
          "aggregated_video",
          "--fps",
          "10",
          "--buffer-size",
          "20",
          "--overlap-size",
          "0",
        ],
        ...["--encoder", "ffmpeg", "--preset", "ultrafast", "--metrics-port", `${pAgg}`, ...beat],
      ],
      redis.env,
      ["--no-prompt", ...permissionFlags("aggregator")],
    );
    const dump = startNode(
      "nodes/dumper.ts",
      [
        "-n",
        "dumper",
        "-st",
        "aggregated_video",
        "--save-dir",
        saveDir,
        "--metrics-port",
        `${pDump}`,
        ...beat,
      ],
      redis.env,
      ["--no-prompt", ...permissionFlags("dumper", { saveDir })],
    );
    const metrics = [
      `rtsp_node=http://127.0.0.1:${pRtsp}/metrics`,
      `aggregator=http://127.0.0.1:${pAgg}/metrics`,
    ];
    const web = startNode(
      "nodes/web.ts",
      [
        ...["-n", "console", "--port", `${pWeb}`, "--save-dir", saveDir, "--stale-after", "3", ...beat],
        ...["--metrics-urls", [...metrics, `dumper=http://127.0.0.1:${pDump}/metrics`].join(",")],
      ],
      redis.env,
      ["--no-prompt", ...permissionFlags("web")],
    );
    const browser = await launchChromium();
    let page: Awaited<ReturnType<typeof browser.newPage>> | undefined;
    try {
      await web.waitForLine(/console on http:\/\/127\.0\.0\.1:\d+\//, 30_000);
      page = await browser.newPage(1280, 800);
      await page.goto(`http://127.0.0.1:${pWeb}/`);

      // Nodes: the three pipeline nodes, running, with figures from their /metrics.
      const running = `["rtsp_node", "aggregator", "dumper"].every((n) =>
        document.querySelector('#nodes tr[data-node="' + n + '"]')?.dataset.status === "RUNNING")`;
      await page.waitFor(running, 40_000, "the three nodes shown RUNNING");
      await page.waitFor(
        `Number(document.querySelector('#nodes tr[data-node="rtsp_node"] td:nth-child(8)').textContent) > 0`,
        30_000,
        "rtsp_node's frames/s out from its /metrics",
      );
      await page.screenshot(`${shots}/nodes.png`);

      // Cameras: the preview image changes. It refreshes about twice a second (`bench web` counts the images); the
      // wait here is what a loaded 2-core machine gives, the delay is printed, not asserted.
      await page.evaluate(`location.hash = "#cameras"`);
      const fig = `document.querySelector('#cams figure[data-sensor="cam_ne"]')`;
      const first = await page.waitFor<string>(
        `${fig}?.querySelector("img").naturalWidth > 0 && ${fig}.dataset.frameId`,
        20_000,
        "a first preview frame shown",
      );
      const t0 = Date.now();
      await page.waitFor(
        `${fig}.dataset.frameId !== "${first}" && ${fig}.querySelector("img").complete && ${fig}.querySelector("img").naturalWidth === 1280`,
        20_000,
        "the preview changes",
      );
      console.log(`the preview changed after ${Date.now() - t0} ms`);
      await page.screenshot(`${shots}/cameras.png`);

      // Recordings: a segment plays (currentTime advances, no media error) and its JSON is shown.
      await page.evaluate(`location.hash = "#recordings"`);
      await page.waitFor(
        `document.querySelector('#rec-list button:not([data-id*="cam_hevc"])')`,
        40_000,
        "a segment listed",
      );
      await page.evaluate(`document.querySelector('#rec-list button:not([data-id*="cam_hevc"])').click()`);
      await page.waitFor(
        `(() => { const v = document.getElementById("player"); return !v.error && v.currentTime > 0.5; })()`,
        15_000,
        "the segment plays",
      );
      assert.equal(await page.evaluate(`document.getElementById("player").error`), null);
      assert.match(
        await page.evaluate<string>(`document.getElementById("meta").textContent`),
        /"sensor_name": "cam_ne"/,
      );
      await page.screenshot(`${shots}/recordings.png`);

      // An HEVC segment (MSight's default codec): it plays, or the page says plainly that this browser cannot.
      await page.evaluate(`document.querySelector('#rec-list button[data-id="0/${HEVC_STEM}"]').click()`);
      const hevc = await page.waitFor<string>(
        `(() => { const v = document.getElementById("player"); const n = document.getElementById("player-notice").textContent;
          return n || (!v.error && v.currentTime > 0.1 ? "played" : ""); })()`,
        15_000,
        "the HEVC segment plays or is said to be unplayable",
      );
      console.log(`the HEVC segment in Chromium: ${hevc}`);
      if (hevc !== "played") assert.match(hevc, /HEVC \(H\.265\): this browser cannot play it/);

      // Timeline: the camera off for 15 s shows as a gap once recording resumes.
      await cam.stop();
      const stoppedAt = Date.now();
      // Meanwhile the preview says the camera has gone quiet.
      await page.evaluate(`location.hash = "#cameras"`);
      await page.waitFor(`${fig}.dataset.stale === "true"`, 20_000, "the preview marked stale");
      assert.match(
        await page.evaluate<string>(`${fig}.querySelector("figcaption").textContent`),
        /no new frame for/,
      );
      await new Promise((r) => setTimeout(r, Math.max(0, 15_000 - (Date.now() - stoppedAt))));
      await cam.restart();
      await page.evaluate(`location.hash = "#timeline"; document.getElementById("tl-window").value = "600"`);
      const gap = await page.waitFor<number>(
        `(async () => { await refreshTimeline();
          const g = [...document.querySelectorAll('#timeline .bar[data-sensor="cam_ne"] .gap')]
            .map((e) => Number(e.dataset.end) - Number(e.dataset.start));
          return g.find((d) => d >= 10); })()`,
        60_000,
        "a gap of at least 10 s on cam_ne's timeline after recording resumed",
      );
      assert.ok(gap >= 10 && gap < 120, `gap ${gap} s`);
      await page.screenshot(`${shots}/timeline.png`);

      // A node killed with SIGKILL (no unregistering) is shown stopped within its heartbeat tolerance.
      await page.evaluate(`location.hash = "#nodes"`);
      dump.kill("SIGKILL");
      const killedAt = Date.now();
      await page.waitFor(
        `document.querySelector('#nodes tr[data-node="dumper"]')?.dataset.status === "STOPPED"`,
        40_000,
        "the killed dumper shown STOPPED",
      );
      console.log(`the killed dumper shown STOPPED after ${Date.now() - killedAt} ms`);
      await page.screenshot(`${shots}/nodes_stopped.png`);
    } catch (err) {
      // What the page and the nodes said, for whoever reads the failure.
      const body = await page?.evaluate<string>("document.body.innerText").catch((e) => String(e));
      console.error(`page:\n${body}`);
      for (const [n, p] of Object.entries({ rtsp, agg, dump, web })) {
        console.error(`${n}:\n${p.stderr.slice(-8).join("\n")}`);
      }
      throw err;
    } finally {
      await browser.close();
      for (const p of [web, dump, agg, rtsp]) await p.stop();
      await cam.stop();
      await redis.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
