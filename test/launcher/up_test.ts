/**
 * `deno task up` end to end, as users run it: a real RTSP camera (GStreamer), a pipeline file with a private Redis,
 * rtsp → aggregator → dumper as three processes. Segments reach the disk; a SIGKILLed dumper is restarted and
 * catches up; SIGTERM stops the nodes in pipeline order, the last partial segment is flushed and saved, exit 0,
 * and no process of the pipeline is left.
 */
import { REPEAT_WINDOW_MS } from "../../src/runtime/signals.ts";
import assert from "node:assert/strict";
import { probeMp4 } from "../helpers/ffprobe.ts";
import { waitFor } from "../helpers/net.ts";
import { DENO, type NodeProcess, startProcess } from "../helpers/process.ts";
import { type RtspServer, startRtspServer } from "../helpers/rtsp_server.ts";
import { descendants, jsonFiles, midSegment, pgrep, pipelineYaml, running } from "../helpers/launcher.ts";

/** What a test body gets from {@linkcode withUp}. */
interface UpRig {
  dir: string;
  camera: RtspServer;
  /** Starts `deno task up FILE` (stopped after the body, if still running). */
  start(file: string, env?: Record<string, string>): NodeProcess;
}

/** A temporary directory and a test camera for one `up` run; after `body`, `up`, the camera and the directory go. */
async function withUp(prefix: string, body: (rig: UpRig) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  const camera = await startRtspServer({ source: "mcity", path: `/up-${crypto.randomUUID().slice(0, 8)}` });
  let up: NodeProcess | undefined;
  try {
    await body({
      dir,
      camera,
      start: (file, env = {}) => (up = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", file], env)),
    });
  } finally {
    await up?.stop();
    await camera.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "up: rtsp → aggregator → dumper from one file; restart after a crash; SIGTERM flushes and stops in order",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withUp("msight-up-e2e-", async ({ dir, camera, start }) => {
      const t0 = Date.now();
      const saveDir = `${dir}/videos`;
      const file = `${dir}/pipeline.yaml`;
      await Deno.writeTextFile(
        file,
        pipelineYaml({
          camera: camera.url,
          sink: `
  - name: video_dumper
    node: dumper
    flags:
      subscribe-topic: aggregated_video
      save-dir: \${SAVE_DIR}`,
        }),
      );
      const u = start(file, { SAVE_DIR: saveDir });
      await u.waitForLine(/^up +\| started 3 node\(s\)/, 20_000);

      // Segments of 20 frames at 10 fps (2 s each) arrive on disk, each an .mp4 with its .json.
      await waitFor(async () => (await jsonFiles(saveDir)).length >= 2, 60_000, "two segments on disk");
      const [first] = await jsonFiles(saveDir);
      const meta = JSON.parse(await Deno.readTextFile(`${saveDir}/${first}`));
      assert.equal(meta.sensor_name, "rtsp_sensor");
      assert.equal(meta.device_name, "up-test-device");
      assert.equal(meta.frame_count, 20);
      const probe = await probeMp4(await Deno.readFile(`${saveDir}/${first.replace(/\.json$/, ".mp4")}`));
      assert.equal(probe.codec, "h264");
      assert.equal(probe.frames, 20);
      assert.deepEqual(probe.boxes.slice(0, 2), ["ftyp", "moov"]);
      console.log(`two segments on disk after ${Date.now() - t0} ms`);

      // Every line is prefixed with its node's name.
      assert.ok(
        u.stdout.some((l) => /^rtsp_node +\| .* - rtsp_node - INFO :: /.test(l)),
        u.stdout.join("\n"),
      );
      assert.ok(u.stdout.some((l) => /^video_dumper +\| .* - video_dumper - INFO :: /.test(l)));

      // A crash: SIGKILL the dumper. The launcher says so, restarts it with backoff, and it catches up.
      const [dumperPid] = await pgrep(`nodes/dumper.ts .*--save-dir=${saveDir}`);
      assert.ok(dumperPid, "the dumper's process");
      Deno.kill(dumperPid, "SIGKILL");
      const killedAt = Date.now();
      const before = (await jsonFiles(saveDir)).length;
      await u.waitForLine(/^video_dumper +\| exited with SIGKILL/, 10_000);
      await u.waitForLine(/^video_dumper +\| restarting in \d+\.\d s \(restart 1\)/, 5_000);
      await waitFor(
        async () => {
          const pids = await pgrep(`nodes/dumper.ts .*--save-dir=${saveDir}`);
          return pids.length === 1 && pids[0] !== dumperPid;
        },
        10_000,
        "a new dumper process",
      );
      await waitFor(
        async () => (await jsonFiles(saveDir)).length >= before + 2,
        30_000,
        "segments after restart",
      );
      console.log(`dumper restarted and saving again ${Date.now() - killedAt} ms after the kill`);

      // SIGTERM: sources first, the aggregator flushes its partial segment, the dumper saves it; exit 0.
      const procs = await descendants(u.child.pid);
      assert.ok(procs.some((p) => p.cmd.includes("redis-server")), procs.map((p) => p.cmd).join("\n"));
      assert.ok(
        procs.some((p) => /(^|\/)ffmpeg$/.test(p.cmd.split(" ")[0])),
        `the nodes' ffmpeg are watched too:\n${procs.map((p) => p.cmd.slice(0, 100)).join("\n")}`,
      );
      // Stop mid-segment (segments are 20 frames, 2 s), so there is a partial segment to flush.
      await midSegment(u);
      const stopAt = Date.now();
      u.kill("SIGTERM");
      assert.equal(await withTimeout(u.exit, 60_000, "up to exit"), 0);
      console.log(`stopped in ${Date.now() - stopAt} ms`);
      const out = u.stdout;
      const at = (re: RegExp) => {
        const i = out.findIndex((l) => re.test(l));
        assert.ok(i >= 0, `a line ${re}:\n${out.slice(-30).join("\n")}`);
        return i;
      };
      at(
        /^up +\| stopping \(received SIGTERM\) in pipeline order: rtsp_node, image-aggregator, video_dumper/,
      );
      const flushed = at(/^image-aggregator \| .*\(closed: shutdown\)/);
      const dumperStops = at(/^video_dumper +\| .*received SIGTERM/);
      assert.ok(at(/^rtsp_node +\| .*received SIGTERM/) < flushed, "the source stops first");
      assert.ok(flushed < dumperStops, "the dumper is still running when the aggregator flushes");
      assert.ok(at(/^up +\| stopped$/) > dumperStops);
      // The partial segment is on disk, marked as flushed at shutdown.
      const metas = await Promise.all(
        (await jsonFiles(saveDir)).map(async (f) => JSON.parse(await Deno.readTextFile(`${saveDir}/${f}`))),
      );
      const last = metas.find((m) => m.flush_reason === "shutdown");
      assert.ok(last, `a segment flushed at shutdown: ${metas.map((m) => m.flush_reason).join(", ")}`);
      assert.ok(last.frame_count > 0 && last.frame_count < 20);
      // No process of the pipeline is left: nodes, their ffmpeg, Redis.
      await waitFor(async () => (await running(procs)).length === 0, 5_000, "no process left");
      assert.deepEqual(await pgrep(dir), []);
      console.log(`whole test ${Date.now() - t0} ms`);
    }),
});

Deno.test({
  name: "up: a second signal kills every process of the pipeline at once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withUp("msight-up-kill-", async ({ dir, camera, start }) => {
      const file = `${dir}/pipeline.yaml`;
      const sink =
        `  - {name: video_dumper, node: dumper, flags: {subscribe-topic: aggregated_video, save-dir: ${dir}/v}}`;
      await Deno.writeTextFile(file, pipelineYaml({ camera: camera.url, sink }));
      const u = start(file, {});
      await u.waitForLine(/^rtsp_node +\| .*Got image from rtsp_sensor/, 30_000);
      const procs = await descendants(u.child.pid);
      assert.ok(procs.length >= 5, procs.map((p) => p.cmd).join("\n")); // 3 nodes, Redis, ffmpeg
      // A source that hangs while stopping (stopped by SIGSTOP): the graceful stop cannot end by itself.
      const source = procs.find((p) => /nodes\/rtsp\.ts/.test(p.cmd));
      assert.ok(source, "the rtsp node runs");
      Deno.kill(source.pid, "SIGSTOP");
      u.kill("SIGTERM");
      await u.waitForLine(/^up +\| stopping/, 5_000);
      // A repeat within REPEAT_WINDOW_MS of the first is the same signal delivered twice (src/runtime/signals.ts).
      await new Promise((r) => setTimeout(r, REPEAT_WINDOW_MS + 200));
      const t = Date.now();
      u.kill("SIGINT");
      assert.equal(await withTimeout(u.exit, 5_000, "up to exit"), 130);
      assert.ok(u.stdout.some((l) => /^up +\| received SIGINT again: killing every node now/.test(l)));
      await waitFor(async () => (await running(procs)).length === 0, 5_000, "no process left");
      console.log(`gone ${Date.now() - t} ms after the second signal`);
    }),
});

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name:
    "up: cameras share a process (cameras_per_process), each its own node; a killed group is restarted whole",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withUp("msight-up-group-", async ({ dir, camera, start }) => {
      const saveDir = `${dir}/videos`;
      const file = `${dir}/pipeline.yaml`;
      // Three cameras, two to a process: `rtsp group 1` (cam_a, cam_b) and cam_c alone.
      await Deno.writeTextFile(
        file,
        `redis: {start: true}
device: up-test-device
cameras_per_process: 2
defaults:
  rtsp: {frame-log-every: 20}
cameras:
  - {name: cam_a, url: ${camera.url}}
  - {name: cam_b, url: ${camera.url}}
  - {name: cam_c, url: ${camera.url}}
nodes:
  - name: aggregator
    node: aggregator
    flags: {subscribe-topic: rtsp_topic, publish-topic: aggregated_video, fps: 10, buffer-size: 20, overlap-size: 0}
  - {name: dumper, node: dumper, flags: {subscribe-topic: aggregated_video, save-dir: ${saveDir}}}
`,
      );
      const u = start(file, {});
      await u.waitForLine(
        /^up +\| rtsp group 1: cam_a, cam_b in one process \(cameras_per_process 2;/,
        20_000,
      );
      const sensors = async () =>
        new Set(
          await Promise.all(
            (await jsonFiles(saveDir)).map(async (f) =>
              JSON.parse(await Deno.readTextFile(`${saveDir}/${f}`)).sensor_name as string
            ),
          ),
        );
      await waitFor(async () => (await sensors()).size === 3, 60_000, "segments of all three cameras");
      // One prefix for the process; each line still names its node.
      for (const name of ["cam_a", "cam_b"]) {
        assert.ok(
          u.stdout.some((l) =>
            new RegExp(`^rtsp group 1 \\| .* - ${name} - INFO :: Got image from ${name}`).test(l)
          ),
          u.stdout.slice(-20).join("\n"),
        );
      }
      assert.ok(u.stdout.some((l) => /^cam_c +\| .* - cam_c - INFO :: Got image from cam_c/.test(l)));
      const rtspProcs = (await descendants(u.child.pid)).filter((p) => /nodes\/rtsp\.ts/.test(p.cmd));
      assert.equal(rtspProcs.length, 2, rtspProcs.map((p) => p.cmd).join("\n"));
      const group = rtspProcs.find((p) => p.cmd.includes(" --next "));
      assert.ok(group && group.cmd.includes("--name=cam_a") && group.cmd.includes("--name=cam_b"));

      // A crash of the process (not of a camera): the launcher restarts it, both cameras come back.
      Deno.kill(group.pid, "SIGKILL");
      await u.waitForLine(/^rtsp group 1 \| exited with SIGKILL/, 10_000);
      const lines = u.stdout.length;
      for (const name of ["cam_a", "cam_b"]) {
        await waitFor(
          () =>
            u.stdout.slice(lines).some((l) =>
              new RegExp(`^rtsp group 1 \\| .* - ${name} - INFO :: Got image`).test(l)
            ),
          60_000,
          `${name} streaming again`,
        );
      }

      const procs = await descendants(u.child.pid);
      u.kill("SIGTERM");
      assert.equal(await withTimeout(u.exit, 60_000, "up to exit"), 0);
      assert.ok(
        u.stdout.some((l) =>
          /^up +\| stopping \(received SIGTERM\) in pipeline order: rtsp group 1, cam_c, aggregator, dumper;/
            .test(l)
        ),
        u.stdout.slice(-30).join("\n"),
      );
      for (const name of ["cam_a", "cam_b"]) {
        assert.ok(
          u.stdout.some((l) =>
            new RegExp(`^rtsp group 1 \\| .* - ${name} - INFO :: received SIGTERM: stopping`).test(l)
          ),
        );
      }
      await waitFor(async () => (await running(procs)).length === 0, 5_000, "no process left");
    }),
});
