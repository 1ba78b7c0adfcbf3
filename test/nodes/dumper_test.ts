/**
 * The dumper as users run it: a real process, a real Redis, real files.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { startRedis } from "../helpers/redis_server.ts";
import { type NodeProcess, startNode, stopsCleanly } from "../helpers/process.ts";
import { waitFor } from "../helpers/net.ts";
import { makeSegment, segmentFeed } from "../helpers/segments.ts";
import { encodeMessage } from "../../src/bus/wire.ts";

const PERMS = (
  dir: string,
) => ["--allow-net", "--allow-env", "--allow-sys=hostname", "--allow-read", `--allow-write=${dir}`];

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** What a test body gets from {@linkcode withDumperRig}. */
interface Rig {
  /** A client of the test Redis. */
  r: Redis;
  /** A temporary folder, the only one dumpers may write in. */
  dir: string;
  /** Starts a dumper with `args`, on the test Redis. */
  dumper(args: string[]): NodeProcess;
}

/** A Redis, a client of it and a temporary folder; every dumper started is stopped and the folder removed after. */
async function withDumperRig(body: (rig: Rig) => Promise<void>): Promise<void> {
  const redis = await startRedis();
  const dir = await Deno.makeTempDir();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  const nodes: NodeProcess[] = [];
  const dumper = (args: string[]) => {
    const p = startNode("nodes/dumper.ts", args, redis.env, PERMS(dir));
    nodes.push(p);
    return p;
  };
  try {
    await body({ r, dir, dumper });
  } finally {
    r.disconnect();
    for (const n of nodes) await n.stop();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("dumper: the tutorial command saves MSight pub/sub segments as <sensor>_<date>_<time>_<us>.mp4 + .json", async () => {
  await withDumperRig(async ({ r, dir, dumper }) => {
    const saveDir = `${dir}/received_videos`;
    const node = dumper(["-n", "video_dumper", "-st", "aggregated_video", "--save-dir", saveDir]);
    await node.waitForLine(/reading aggregated_video over plain pub\/sub/);
    const seg = await makeSegment("test_camera", 1769272135.649586);
    await r.publish("aggregated_video", Buffer.from(encodeMessage(seg)));
    await r.publish("aggregated_video", Buffer.from([0xde, 0xad])); // malformed: counted, not fatal
    await r.publish(
      "aggregated_video",
      Buffer.from(await Deno.readFile("test/fixtures/msight-wire/video.msgpack")),
    );
    await waitFor(async () => (await listDir(saveDir)).length === 4, 10_000, "two segments on disk");
    // MSight's segment is named from its first frame (16:28:45.649586), not its capture_timestamp (16:28:46.512345).
    assert.deepEqual(await listDir(saveDir), [
      "test_camera_20260124_162845_649586.json",
      "test_camera_20260124_162845_649586.mp4",
      "test_camera_20260124_162855_649586.json",
      "test_camera_20260124_162855_649586.mp4",
    ]);
    assert.deepEqual(await Deno.readFile(`${saveDir}/test_camera_20260124_162855_649586.mp4`), seg.video);
    const jsonText = await Deno.readTextFile(`${saveDir}/test_camera_20260124_162845_649586.json`);
    // Every digit of the 64-bit ids, as MSight's own fixture has them.
    assert.match(jsonText, /"frame_id": ?7421057266765168641/);
    assert.match(jsonText, /7421057263124512769,/);
    const meta = JSON.parse(jsonText);
    assert.equal(meta.data_type, "msight_core.data.video.VideoData");
    assert.equal(meta.video, null);
    assert.equal(meta.sensor_name, "test_camera");
    assert.match(meta.sha256, /^[0-9a-f]{64}$/);
    assert.equal(meta.start_source, "capture_timestamps");
    // Read from the MP4 itself, although MSight's message carries none of these.
    assert.deepEqual([meta.codec, meta.width, meta.height, meta.fps, meta.duration], [
      "h264",
      320,
      240,
      10,
      0.5,
    ]);
    assert.ok(node.stderr.some((l) => /dropped a malformed message on aggregated_video/.test(l)));
    await stopsCleanly(node);
  });
});

Deno.test("dumper: on the durable stream, a dumper SIGKILLed while segments keep coming loses none and repeats none", async () => {
  await withDumperRig(async ({ r, dir: saveDir, dumper }) => {
    const { publish } = segmentFeed(r, "aggregated_video", { pubsub: true });
    const args = ["-n", "video_dumper", "-st", "aggregated_video", "-sd", saveDir];
    await publish(0); // announces the stream, so --transport auto picks it
    let node = dumper(args);
    await node.waitForLine(/from its durable stream as consumer group video_dumper/);
    for (let i = 1; i < 10; i++) await publish(i);
    await waitFor(async () => (await listDir(saveDir)).length >= 6, 10_000, "some segments");
    node.kill("SIGKILL");
    await node.exit;
    for (let i = 10; i < 20; i++) await publish(i); // while the dumper is down
    node = dumper(args);
    for (let i = 20; i < 25; i++) await publish(i);
    await waitFor(
      async () => (await listDir(saveDir)).filter((n) => n.endsWith(".json")).length === 25,
      20_000,
      "all 25 segments",
    );
    const names = await listDir(saveDir);
    assert.equal(names.length, 50, names.join("\n"));
    assert.ok(
      names.every((n) => /^cam_\d{8}_\d{6}_\d{6}\.(mp4|json)$/.test(n)),
      "no temporary or duplicate files",
    );
    await waitFor(
      async () => ((await r.xpending("MSIGHT:STREAM:aggregated_video", "video_dumper")) as [number])[0] === 0,
      5000,
      "all acknowledged",
    );
    await stopsCleanly(node);
  });
});

Deno.test("dumper: hostile sensor names stay inside --save-dir; an unwritable save dir is one line, exit 1", async () => {
  await withDumperRig(async ({ r, dir: root, dumper }) => {
    const saveDir = `${root}/videos`;
    const node = dumper(["-n", "d", "-st", "v", "-sd", saveDir, "--transport", "pubsub"]);
    await node.waitForLine(/over plain pub\/sub/);
    const names = ["../../escape", "a/b/c", "nul\u0000byte", "x".repeat(600), "..", "/etc/passwd"];
    for (const [i, n] of names.entries()) {
      await r.publish("v", Buffer.from(encodeMessage(await makeSegment(n, 1769000000 + i))));
    }
    await waitFor(
      async () => (await listDir(saveDir)).filter((n) => n.endsWith(".json")).length === names.length,
      10_000,
      "six segments",
    );
    assert.deepEqual(await listDir(root), ["videos"], "nothing written beside the save dir");
    for (const n of await listDir(saveDir)) {
      assert.ok(!n.includes("/") && !n.startsWith(".") && n.length < 255, n);
      assert.ok((await Deno.lstat(`${saveDir}/${n}`)).isFile);
    }
    node.kill("SIGTERM");
    await node.exit;

    // A save dir that cannot be created (a regular file is in the way; root ignores permission bits).
    await Deno.writeTextFile(`${root}/file`, "x");
    const bad = dumper(["-n", "d2", "-st", "v", "-sd", `${root}/file/videos`]);
    assert.equal(await bad.exit, 1);
    const errs = bad.stderr.filter((l) => / - (CRITICAL|ERROR) :: /.test(l));
    assert.equal(errs.length, 1, bad.stderr.join("\n"));
    assert.match(errs[0], new RegExp(`${root}/file/videos`));
    assert.ok(!bad.stderr.some((l) => /^\s+at /.test(l)));
  });
});
