/**
 * The README's first command, `deno task demo`, started and stopped as a user would: it saves segments, flushes
 * the partial one at shutdown, exits 0, and leaves no redis-server, camera or ffmpeg behind.
 */
import assert from "node:assert/strict";
import { startNode } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";

/** Command lines of live processes matching the extended regex `pattern` (pgrep -f, minus the pgrep itself). */
async function processesWith(pattern: string): Promise<string[]> {
  const out = await new Deno.Command("pgrep", { args: ["-a", "-f", "--", pattern], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim() && !/\bpgrep\b/.test(l));
}

Deno.test("demo: --duration 25 saves segments (the last flushed at shutdown), exits 0, leaves no process behind", async () => {
  const root = await Deno.makeTempDir({ prefix: "msight-demo-" });
  const saveDir = `${root}/received_videos`;
  const webPort = freePort();
  const demo = startNode(
    "nodes/demo.ts",
    ["--duration", "25", "--buffer-size", "30", "--save-dir", saveDir, "--web-port", `${webPort}`],
    { MSIGHT_EDGE_DEVICE_NAME: "demo-test" },
  );
  try {
    // The web console it prints shows the three nodes and the camera.
    await demo.waitForLine(new RegExp(`web console: http://127\\.0\\.0\\.1:${webPort}/`), 60_000);
    await waitFor(
      async () => {
        // Not listening yet, or mid-restart: poll again.
        const get = (p: string) =>
          fetch(`http://127.0.0.1:${webPort}${p}`).then((r) => r.json()).catch(() => []);
        const nodes = (await get("/api/nodes")) as { name: string; status: string }[];
        const running = ["rtsp_node", "image-aggregator", "video_dumper", "console"]
          .every((n) => nodes.some((x) => x.name === n && x.status === "RUNNING"));
        return running && ((await get("/api/cameras")) as unknown[]).length === 1;
      },
      20_000,
      "the console showing the four nodes running and the camera",
    );
    const code = await Promise.race([
      demo.exit,
      new Promise<number>((_, reject) =>
        setTimeout(() => reject(new Error("demo still running after 90 s")), 90_000)
      ),
    ]);
    const log = [...demo.stdout, ...demo.stderr];
    assert.equal(code, 0, log.slice(-20).join("\n"));
    const redisPort = log.join("\n").match(/private Redis on 127\.0\.0\.1:(\d+)/)?.[1];
    const cameraUrl = log.join("\n").match(/demo camera at (rtsp:\/\/\S+)/)?.[1];
    assert.ok(redisPort && cameraUrl, "the demo says where Redis and the camera are");

    const names: string[] = [];
    for await (const e of Deno.readDir(saveDir)) names.push(e.name);
    const stems = names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).sort();
    assert.ok(stems.length >= 2, `expected ≥ 2 segments, got ${names.join(", ")}`);
    for (const s of stems) assert.ok(names.includes(`${s}.mp4`), `${s}.mp4`);
    const metas = await Promise.all(
      stems.map(async (s) =>
        JSON.parse(await Deno.readTextFile(`${saveDir}/${s}.json`)) as { flush_reason: string }
      ),
    );
    // The pipeline stops camera side first, so the partial segment is published and saved, not lost. A stop that
    // falls right after a segment closed (about one frame slot in 30) leaves the aggregator holding nothing.
    const held = log.join("\n").match(/closing the segment of \S+ early \(shutdown, (\d+) frames\)/)?.[1];
    const reasons = JSON.stringify(metas.map((m) => m.flush_reason));
    if (held === undefined) {
      console.log("the stop fell on a segment boundary: nothing was held to flush");
      assert.ok(metas.every((m) => m.flush_reason === "full"), reasons);
    } else {
      assert.equal(metas.at(-1)?.flush_reason, "shutdown", reasons);
      assert.equal(
        (metas.at(-1) as { frame_count?: number }).frame_count,
        Number(held),
        "the held frames, all saved",
      );
      assert.ok(metas.slice(0, -1).every((m) => m.flush_reason === "full"), reasons);
    }

    // Nothing outlives the demo: the nodes (their --save-dir), Redis (its port), the camera and ffmpeg (the URL).
    assert.deepEqual(await processesWith(root), []);
    // redis-server renames its process to "redis-server 127.0.0.1:PORT".
    assert.deepEqual(await processesWith(`redis-server.*[: ]${redisPort}( |$)`), []);
    assert.deepEqual(await processesWith(cameraUrl.replace(/\/live\.stream$/, "")), []);
    const rtspPort = new URL(cameraUrl.replace(/^rtsp:/, "http:")).port;
    assert.deepEqual(await processesWith(`--port ${rtspPort}`), []);
  } finally {
    await demo.stop();
    await Deno.remove(root, { recursive: true });
  }
});
