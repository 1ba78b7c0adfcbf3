/**
 * The shipped bus examples, run end to end through `deno task up` as users run them: examples/redis_cluster.yaml
 * on a real 3 + 3 Redis Cluster and examples/nats.yaml on a real `nats-server -js` with a user and password, each
 * fed by the real RTSP test camera. Only the servers' addresses in the file are rewritten to the test's; camera,
 * save folder and credentials come in through the `${VAR}`s the files read. Every segment the aggregator
 * published reaches the dumpers' --save-dir once (the two dumpers share one consumer group); SIGTERM stops the
 * pipeline with exit 0; credentials appear in no log line and on no command line. And NATS beside a `redis:` keeps
 * the registry in that Redis, as MSight does.
 */
import assert from "node:assert/strict";
import { descendants, jsonFiles, running } from "../helpers/launcher.ts";
import { startNats } from "../helpers/nats_server.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { DENO, type NodeProcess, startProcess } from "../helpers/process.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { clusterStreamKey } from "../../src/bus/redis_cluster/mod.ts";

interface Run {
  /** The example, as shipped. */
  example: string;
  /** The example's server addresses, exactly as written there, and the test's. */
  servers: [string, string];
  env: Record<string, string>;
  /** up's line about the bus. */
  busLine: RegExp;
  /** How the nodes name the bus when they start. */
  nodeBus: RegExp;
}

const DUMPERS = ["dumper_1", "dumper_2"];

/** The `.json` files under each dumper's folder (`$SAVE_DIR/<dumper>` in the examples), as `<dumper>/<file>`. */
async function savedJsons(saveDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of DUMPERS) out.push(...(await jsonFiles(`${saveDir}/${d}`)).map((f) => `${d}/${f}`));
  return out;
}

/**
 * Runs the example until two segments are on disk, stops it, and returns up's lines (and the command lines of its
 * processes) and the files of both dumpers' folders, as `<dumper>/<file>`.
 */
async function runExample(run: Run): Promise<{ lines: string[]; names: string[]; published: number }> {
  const dir = await Deno.makeTempDir({ prefix: "msight-bus-example-" });
  const saveDir = `${dir}/videos`;
  const camera = await startRtspServer({
    source: "synthetic",
    width: 320,
    height: 240,
    fps: 10,
    path: `/bus-${crypto.randomUUID().slice(0, 8)}`,
  });
  let up: NodeProcess | undefined;
  try {
    const shipped = await Deno.readTextFile(run.example);
    assert.equal(shipped.split(run.servers[0]).length, 2, `${run.example} names ${run.servers[0]} once`);
    const file = `${dir}/${run.example.split("/").pop()}`;
    await Deno.writeTextFile(file, shipped.replace(run.servers[0], run.servers[1]));
    up = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", file], {
      ...run.env,
      CAMERA_URL: camera.url,
      SAVE_DIR: saveDir,
      MSIGHT_EDGE_DEVICE_NAME: "bus-example-device",
    });
    const u = up;
    await u.waitForLine(run.busLine, 30_000);
    await u.waitForLine(/^up +\| started 4 node\(s\)/, 30_000);
    await waitFor(async () => (await savedJsons(saveDir)).length >= 2, 120_000, "two segments on disk").catch(
      (err) => {
        throw new Error(`${err}; up's last lines:\n${u.stdout.slice(-40).join("\n")}`);
      },
    );
    for (const name of ["rtsp_node", "image-aggregator", "dumper_1", "dumper_2"]) {
      assert.ok(
        u.stdout.some((l) =>
          l.startsWith(name) && / started on device bus-example-device \(/.test(l) && run.nodeBus.test(l)
        ),
        `${name} runs on the example's bus:\n${u.stdout.filter((l) => l.includes("started on")).join("\n")}`,
      );
    }
    for (const name of DUMPERS) {
      assert.ok(
        u.stdout.some((l) => l.startsWith(name) && /durable stream as consumer group archive/.test(l)),
        `${name} reads the durable stream in group archive:\n${u.stdout.slice(-30).join("\n")}`,
      );
    }
    // No node died on the way (the supervisor says so only for an exit it did not ask for).
    assert.deepEqual(u.stdout.filter((l) => /^\S+ +\| exited with /.test(l)), []);
    const procs = await descendants(u.child.pid);
    u.kill("SIGTERM");
    assert.equal(await u.exit, 0, u.stdout.slice(-30).join("\n"));
    await waitFor(async () => (await running(procs)).length === 0, 10_000, "no process of the pipeline left");
    // Every segment the aggregator published (its flush at the stop included) is on disk.
    const published = u.stdout.filter((l) =>
      /^image-aggregator \| .*published segment of rtsp_sensor:/.test(l)
    )
      .length;
    assert.ok(published >= 2, `published ${published}`);
    await waitFor(
      async () => (await savedJsons(saveDir)).length >= published,
      10_000,
      `${published} on disk`,
    );
    const names: string[] = [];
    for (const d of DUMPERS) {
      for await (const e of Deno.readDir(`${saveDir}/${d}`)) names.push(`${d}/${e.name}`);
    }
    // Shown, not judged (a loaded machine may warn): what to look at first when something else fails.
    for (const l of u.stdout.filter((l) => / - (WARNING|ERROR|CRITICAL) :: /.test(l))) console.log(l);
    return { lines: [...u.stdout, ...u.stderr, ...procs.map((p) => p.cmd)], names: names.sort(), published };
  } finally {
    await up?.stop();
    await camera.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Each published segment stored exactly once across the group: one .json and one .mp4 each, in one of the two
 * folders, nothing else; one `saved` line each; none delivered again.
 */
function assertEachOnce(r: { lines: string[]; names: string[]; published: number }): void {
  const all = r.names.join("\n");
  const stems = r.names.filter((n) => n.endsWith(".json")).map((n) => n.split("/")[1].replace(/\.json$/, ""));
  assert.equal(stems.length, r.published, all);
  assert.equal(new Set(stems).size, r.published, `no segment in both folders:\n${all}`);
  for (const n of r.names) assert.match(n, /^dumper_[12]\/rtsp_sensor_\d{8}_\d{6}_\d{6}\.(mp4|json)$/, all);
  assert.equal(r.names.filter((n) => n.endsWith(".mp4")).length, r.published, all);
  const saved = r.lines.filter((l) => /^dumper_[12] +\| .* saved \S+\.mp4 \(/.test(l)).length;
  assert.equal(saved, r.published, "one save per segment, by one member of the group");
  assert.ok(!r.lines.some((l) => /already saved/.test(l)), "no segment delivered twice");
  const by = (d: string) => r.names.filter((n) => n.startsWith(`${d}/`) && n.endsWith(".json")).length;
  console.log(`${r.published} segments: ${by("dumper_1")} stored by dumper_1, ${by("dumper_2")} by dumper_2`);
}

Deno.test({
  name:
    "examples/redis_cluster.yaml through up on a real 3 + 3 Redis Cluster: every segment in --save-dir once",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cluster = await startRedisCluster();
    try {
      const seeds = cluster.ports.slice(0, 3).map((p) => `127.0.0.1:${p}`);
      const r = await runExample({
        example: "examples/redis_cluster.yaml",
        servers: [
          ["7000", "7001", "7002"].map((p) => `    - 127.0.0.1:${p}\n`).join(""),
          seeds.map((s) => `    - ${s}\n`).join(""),
        ],
        env: {},
        busLine: new RegExp(
          `^up +\\| bus: redis-cluster at redis\\+cluster://${
            seeds.join(",")
          }; registry on the same cluster$`,
        ),
        nodeBus: new RegExp(`\\(Redis Cluster redis\\+cluster://${seeds.join(",")}\\)`),
      });
      assertEachOnce(r);
      // The segments went through the cluster: the topic's stream there has the dumpers' group.
      const groups = await cluster.cli(
        cluster.ports[0],
        "-c",
        "XINFO",
        "GROUPS",
        clusterStreamKey("aggregated_video"),
      );
      assert.match(groups, /\barchive\b/, groups);
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name:
    "examples/nats.yaml through up on a real nats-server -js with a password: every segment in --save-dir once",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const password = `pw-${crypto.randomUUID()}`;
    const nats = await startNats({ user: "edge", pass: password });
    try {
      const r = await runExample({
        example: "examples/nats.yaml",
        servers: ["nats://127.0.0.1:4222", nats.url],
        env: { NATS_USER: "edge", NATS_PASSWORD: password },
        busLine: new RegExp(
          `^up +\\| bus: nats at ${nats.url}; registry in JetStream key-value buckets MSIGHT_NODES, MSIGHT_TOPICS$`,
        ),
        nodeBus: new RegExp(`\\(NATS ${nats.url}\\)`),
      });
      assertEachOnce(r);
      // The password reached the nodes (they connected) through their environment only.
      assert.deepEqual(
        r.lines.filter((l) => l.includes(password)),
        [],
        "the password in no line, no command line",
      );
    } finally {
      await nats.stop();
    }
  },
});

Deno.test({
  name:
    "up with bus: nats and redis: {start: true}: the registry (MSIGHT:NODES, MSIGHT:TOPICS) is in that Redis",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNats();
    const dir = await Deno.makeTempDir({ prefix: "msight-bus-registry-" });
    let up: NodeProcess | undefined;
    try {
      const port = await freePort();
      const file = `${dir}/pipeline.yaml`;
      await Deno.writeTextFile(
        file,
        `redis: {start: true, port: ${port}}
bus: ${nats.url}
nodes:
  - {name: video_dumper, node: dumper, flags: {subscribe-topic: aggregated_video, save-dir: ${dir}/v}}
`,
      );
      up = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", file], {
        MSIGHT_EDGE_DEVICE_NAME: "reg-test",
      });
      const u = up;
      await u.waitForLine(
        new RegExp(
          `^up +\\| bus: nats at ${nats.url}; registry in Redis at redis://127\\.0\\.0\\.1:${port}/0$`,
        ),
        30_000,
      );
      await u.waitForLine(
        new RegExp(`video_dumper +\\| .* started on device reg-test \\(NATS ${nats.url}\\)`),
        30_000,
      );
      const cli = async (...args: string[]) =>
        new TextDecoder().decode(
          (await new Deno.Command("redis-cli", { args: ["-p", String(port), ...args] }).output()).stdout,
        );
      assert.match(await cli("HKEYS", "MSIGHT:NODES"), /^video_dumper$/m);
      assert.match(await cli("HKEYS", "MSIGHT:TOPICS"), /^aggregated_video$/m);
      u.kill("SIGTERM");
      assert.equal(await u.exit, 0, u.stdout.slice(-20).join("\n"));
    } finally {
      await up?.stop();
      await nats.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
