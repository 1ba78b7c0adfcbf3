/**
 * LD_LIBRARY_PATH and LD_PRELOAD set, as on CUDA machines: Deno refuses to spawn a subprocess with them under a
 * scoped --allow-run, so the nodes that run ffmpeg blank them for their children (src/runtime/spawn_env.ts), and
 * bin/msight-launch hands the operator's values to ffmpeg itself. Real camera, Redis, ffmpeg and launcher; the
 * preloaded library is glibc's libanl (harmless, and not one ffmpeg links), so its presence in ffmpeg's memory map
 * shows the variables reached ffmpeg as they would reach a plain `ffmpeg -hwaccel cuda`.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis } from "../helpers/redis_server.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { DENO, type NodeProcess, ROOT, startNode, startProcess } from "../helpers/process.ts";
import { waitFor } from "../helpers/net.ts";
import { descendants } from "../helpers/launcher.ts";
import { probeMp4 } from "../helpers/ffprobe.ts";
import { decodeMessage } from "../../src/bus/wire.ts";
import type { ImageData, VideoData } from "../../src/bus/message.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";

const PRELOAD = "/lib/x86_64-linux-gnu/libanl.so.1";
const LD = { LD_LIBRARY_PATH: "/usr/lib/x86_64-linux-gnu", LD_PRELOAD: PRELOAD };

/** The environment and mapped libraries of the ffmpeg children of `pid`. */
async function ffmpegChildren(pid: number): Promise<{ env: Record<string, string>; maps: string }[]> {
  const out = [];
  for (const p of await descendants(pid)) {
    try {
      if (Deno.readTextFileSync(`/proc/${p.pid}/comm`).trim() !== "ffmpeg") continue;
      const env = Object.fromEntries(
        Deno.readTextFileSync(`/proc/${p.pid}/environ`).split("\0").filter((kv) => kv.includes("=")).map(
          (kv) => {
            const i = kv.indexOf("=");
            return [kv.slice(0, i), kv.slice(i + 1)];
          },
        ),
      );
      out.push({ env, maps: Deno.readTextFileSync(`/proc/${p.pid}/maps`) });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err; // exited meanwhile: not a child any more
    }
  }
  return out;
}

function envOf(pid: number): string {
  return Deno.readTextFileSync(`/proc/${pid}/environ`);
}

async function collect<T>(port: number, topic: string) {
  const sub = new Redis({ host: "127.0.0.1", port });
  const got: T[] = [];
  sub.on("messageBuffer", (_c: Buffer, m: Buffer) => got.push(decodeMessage(new Uint8Array(m)) as T));
  await sub.subscribe(topic);
  return { got, close: () => sub.disconnect() };
}

Deno.test("loader env: Deno refuses LD_* under --allow-run=ffmpeg; childEnv() spawns; the refusal names Deno's reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "msight-ld-" });
  try {
    const script = `${dir}/spawn.ts`;
    await Deno.writeTextFile(
      script,
      `import { childEnv, spawnRefusal } from "${ROOT}src/runtime/spawn_env.ts";
try {
  await new Deno.Command("ffmpeg", { args: ["-version"], stdout: "null" }).output();
  console.log("plain: spawned");
} catch (e) {
  console.log("plain: " + spawnRefusal("ffmpeg", e));
}
const o = await new Deno.Command("ffmpeg", { args: ["-version"], stdout: "null", ...childEnv() }).output();
console.log("childEnv: exit " + o.code);
`,
    );
    const out = await new Deno.Command(DENO, {
      args: ["run", "--no-prompt", "--allow-env", "--allow-read", "--allow-run=ffmpeg", script],
      env: LD,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.match(
      lines[0],
      /^plain: "ffmpeg" is not allowed to run: Deno refused it: Requires --allow-run permissions to spawn subprocess with LD_LIBRARY_PATH, LD_PRELOAD environment variables/,
    );
    assert.equal(lines[1], "childEnv: exit 0");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loader env: rtsp node and aggregator with LD_LIBRARY_PATH and LD_PRELOAD set, scoped permissions: frames, a segment, and ffmpeg gets the variables through bin/msight-launch", async () => {
  const redis = await startRedis();
  const cam = await startRtspServer({
    source: "synthetic",
    width: 640,
    height: 360,
    fps: 10,
    path: "/ld-env",
  });
  const runtime = await Deno.makeTempDir({ prefix: "msight-ld-run-" });
  const frames = await collect<ImageData>(redis.port, "ld_frames");
  const direct = await collect<ImageData>(redis.port, "ld_direct");
  const videos = await collect<VideoData>(redis.port, "ld_video");
  const env = { ...redis.env, ...LD, DENO, XDG_RUNTIME_DIR: runtime };
  const started: NodeProcess[] = []; // stopped in the finally, whatever failed
  const launch = (node: string, args: string[]) =>
    started[started.length] = startProcess(`${ROOT}bin/msight-launch`, [node, ...args], env);
  try {
    const agg = launch(
      "aggregator",
      "-n ld_agg -st ld_frames -pt ld_video --fps 10 --buffer-size 10 --overlap-size 0 --codec h264_nvenc"
        .split(" "),
    );
    await agg.waitForLine(/aggregating ld_frames → ld_video/, 30_000); // subscribed before the first frame
    const rtsp = launch("rtsp", [
      ..."-n ld_rtsp -pt ld_frames -sn ld_cam -g 0 --rtsp-transport tcp -u".split(" "),
      cam.url,
    ]);
    // The same node started with its scoped permissions but without the launcher: children get the variables blank.
    const plain = started[started.length] = startNode(
      "nodes/rtsp.ts",
      [..."-n ld_plain -pt ld_direct -sn ld_cam2 --rtsp-transport tcp -u".split(" "), cam.url],
      { ...redis.env, ...LD },
      ["--no-prompt", ...permissionFlags("rtsp")],
    );
    await waitFor(
      () => frames.got.length >= 15 && direct.got.length >= 5,
      40_000,
      "frames from both rtsp nodes",
    );
    // Through the launcher: Deno itself runs without the variables, its ffmpeg with the operator's values.
    assert.ok(!/(^|\0)LD_/.test(envOf(rtsp.child.pid)), "Deno runs without LD_*");
    const [viaLauncher] = await ffmpegChildren(rtsp.child.pid);
    assert.ok(viaLauncher, "the launched node's ffmpeg runs");
    assert.equal(viaLauncher.env.LD_LIBRARY_PATH, LD.LD_LIBRARY_PATH);
    assert.equal(viaLauncher.env.LD_PRELOAD, PRELOAD);
    assert.ok(viaLauncher.maps.includes("libanl"), "the preloaded library is mapped in ffmpeg");
    // Without the launcher: blanked (Deno would refuse them), one warning naming them.
    const [blank] = await ffmpegChildren(plain.child.pid);
    assert.ok(blank, "the plain node's ffmpeg runs");
    assert.equal(blank.env.LD_PRELOAD, "");
    assert.equal(blank.env.LD_LIBRARY_PATH, "");
    assert.ok(!blank.maps.includes("libanl"));
    const ldWarnings = (lines: string[]) => lines.filter((l) => / - WARNING :: .*LD_LIBRARY_PATH/.test(l));
    assert.equal(ldWarnings(plain.stderr).length, 1, plain.stderr.join("\n"));
    assert.match(ldWarnings(plain.stderr)[0], /LD_LIBRARY_PATH, LD_PRELOAD are set but not passed to ffmpeg/);
    assert.deepEqual(
      ldWarnings(rtsp.stderr),
      [],
      "through the launcher nothing is lost, nothing to warn about",
    );
    // -g 0 here (no GPU): the CUDA probe ran (a spawn too) and fell back with its one warning.
    assert.equal(
      rtsp.stderr.filter((l) => / - WARNING :: CUDA decode on GPU 0 unavailable/.test(l)).length,
      1,
    );

    // The aggregator, launched the same way, makes its first segment (NVENC cannot open here: libx264).
    await waitFor(() => videos.got.length >= 1, 60_000, "a segment");
    const p = await probeMp4(videos.got[0].video);
    assert.deepEqual([p.codec, p.frames], ["h264", 10]);
    assert.deepEqual(
      videos.got[0].frameIds,
      frames.got.slice(0, 10).map((f) => f.frameId),
      "the first frames",
    );
    assert.equal(agg.stderr.filter((l) => / - WARNING :: /.test(l)).length, 1, agg.stderr.join("\n"));
    assert.ok(agg.stderr.some((l) => /WARNING :: h264_nvenc cannot be used/.test(l)));
    assert.ok(!agg.stderr.some((l) => /not allowed to run|NotCapable/.test(l)));
  } finally {
    for (const n of started) n.kill("SIGTERM");
    await Promise.all(started.map((n) => n.exit));
    await Promise.all(started.map((n) => n.stop()));
    frames.close();
    direct.close();
    videos.close();
    await cam.stop();
    await redis.stop();
    await Deno.remove(runtime, { recursive: true });
  }
});
