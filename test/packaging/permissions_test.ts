/**
 * Scoped permissions, for real: each node started with exactly the flags of `src/launcher/permissions.ts` is
 * refused by Deno outside its grant, and says so in one line (no stack); `bin/msight-launch` grants exactly the
 * directory the node's own flags name; every `deno task` of a node goes through it.
 */
import assert from "node:assert/strict";
import { startRedis } from "../helpers/redis_server.ts";
import { DENO, ROOT, startNode, startProcess } from "../helpers/process.ts";
import { freePort } from "../helpers/net.ts";
import { NODE_NAMES, permissionFlags, runtimeFlags } from "../../src/launcher/permissions.ts";

/** A fatal line (MSight's text format), and no stack-trace line anywhere. */
function assertOneFatalLine(stderr: string[], re: RegExp): string {
  const fatal = stderr.filter((l) => / - (CRITICAL|ERROR) :: /.test(l));
  assert.equal(fatal.length, 1, `expected one fatal line, got:\n${stderr.join("\n")}`);
  assert.match(fatal[0], re);
  assert.ok(!stderr.some((l) => /^\s+at /.test(l)), `a stack trace was printed:\n${stderr.join("\n")}`);
  return fatal[0];
}

Deno.test("permissions: each node may run exactly the programs it starts (ffmpeg for rtsp and aggregator, else none)", () => {
  assert.deepEqual(
    permissionFlags("web").filter((f) => f.startsWith("--allow-write")),
    [],
    "the web console writes nothing",
  );
  const runs = Object.fromEntries(
    NODE_NAMES.map((n) => [n, permissionFlags(n).filter((f) => f.startsWith("--allow-run"))]),
  );
  assert.deepEqual(runs, {
    rtsp: ["--allow-run=ffmpeg"],
    aggregator: ["--allow-run=ffmpeg"],
    dumper: [],
    pusher: [],
    status: [],
    echo: [],
    web: [],
  });
});

Deno.test("permissions: the dumper granted dir A but given --save-dir B is refused by Deno, in one line naming B", async () => {
  const redis = await startRedis();
  const root = await Deno.makeTempDir({ prefix: "msight-perm-" });
  const node = startNode(
    "nodes/dumper.ts",
    ["-n", "video_dumper", "-st", "aggregated_video", "--save-dir", `${root}/B`],
    redis.env,
    ["--no-prompt", ...permissionFlags("dumper", { saveDir: `${root}/A` })],
  );
  try {
    assert.equal(await node.exit, 1);
    assertOneFatalLine(
      node.stderr,
      new RegExp(`save directory ${root}/B is not writable: Deno's write permission`),
    );
    await assert.rejects(Deno.stat(`${root}/B`), Deno.errors.NotFound);
  } finally {
    await node.stop();
    await redis.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("permissions: the rtsp node may run ffmpeg only: --ffmpeg /bin/sh is refused in one line", async () => {
  const redis = await startRedis();
  const node = startNode(
    "nodes/rtsp.ts",
    [
      "-n",
      "rtsp_node",
      "-pt",
      "rtsp_topic",
      "-sn",
      "cam",
      "-u",
      "rtsp://127.0.0.1:9/x",
      "--ffmpeg",
      "/bin/sh",
    ],
    redis.env,
    ["--no-prompt", ...permissionFlags("rtsp")],
  );
  try {
    assert.equal(await node.exit, 2);
    assertOneFatalLine(
      node.stderr,
      /"\/bin\/sh" is not allowed to run: Deno refused it: Requires run access to "\/bin\/sh"/,
    );
  } finally {
    await node.stop();
    await redis.stop();
  }
});

Deno.test("permissions: the pusher granted spool A but given --spool-dir B is refused in one line naming B", async () => {
  const redis = await startRedis();
  const root = await Deno.makeTempDir({ prefix: "msight-perm-" });
  // An S3 endpoint nobody listens on: unreachable S3 is not fatal, so the node goes on to open its outbox.
  const s3 = `http://127.0.0.1:${freePort()}`;
  const node = startNode(
    "nodes/pusher.ts",
    [
      "-st",
      "aggregated_video",
      "--name",
      "video_pusher",
      "--bucket-name",
      "b",
      "--endpoint-url",
      s3,
      "--spool-dir",
      `${root}/B`,
    ],
    { ...redis.env, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1" },
    ["--no-prompt", ...permissionFlags("pusher", { spoolDir: `${root}/A` })],
  );
  try {
    assert.equal(await node.exit, 1);
    assertOneFatalLine(
      node.stderr,
      new RegExp(`spool directory ${root}/B is not writable: Deno's write permission`),
    );
    await assert.rejects(Deno.stat(`${root}/B`), Deno.errors.NotFound);
  } finally {
    await node.stop();
    await redis.stop();
    await Deno.remove(root, { recursive: true });
  }
});

async function launcherFlags(args: string[]): Promise<string[]> {
  const out = await new Deno.Command(DENO, {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      "src/launcher/permissions_cli.ts",
      ...args,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

Deno.test("permissions: bin/msight-launch grants exactly the --save-dir / --spool-dir of the node's own command line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "msight-perm-" });
  try {
    const writes = (flags: string[]) => flags.filter((f) => f.startsWith("--allow-write"));
    assert.deepEqual(
      writes(await launcherFlags(["dumper", "-n", "d", "-st", "v", "--save-dir", "/data/X"])),
      [
        "--allow-write=/data/X",
      ],
    );
    // Short flag, prefix of a long flag, --flag=value, and a --config file: all read by the node's own parser.
    assert.deepEqual(writes(await launcherFlags(["dumper", "-n", "d", "-st", "v", "-sd", "/data/Y"])), [
      "--allow-write=/data/Y",
    ]);
    assert.deepEqual(writes(await launcherFlags(["dumper", "-n", "d", "-st", "v", "--save=/data/Z"])), [
      "--allow-write=/data/Z",
    ]);
    await Deno.writeTextFile(`${dir}/d.yaml`, "name: d\nsubscribe-topic: v\nsave-dir: /data/cfg\n");
    assert.deepEqual(writes(await launcherFlags(["dumper", "--config", `${dir}/d.yaml`])), [
      "--allow-write=/data/cfg",
    ]);
    assert.deepEqual(
      writes(await launcherFlags(["pusher", "-st", "v", "--name", "p", "--bucket-name", "b"])),
      [
        "--allow-write=./.msight-spool",
      ],
    );
    assert.deepEqual(
      writes(
        await launcherFlags(["pusher", "-st", "v", "--name", "p", "--bucket-name", "b", "--spool-dir", "/s"]),
      ),
      ["--allow-write=/s"],
    );
    for (const node of ["rtsp", "aggregator", "status", "echo"]) {
      const flags = await launcherFlags([node, "-n", "x"]);
      assert.deepEqual(writes(flags), [], node);
      assert.deepEqual(flags, [...runtimeFlags(node as "rtsp"), ...permissionFlags(node as "rtsp")]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("permissions: the dumper through bin/msight-launch writes its --save-dir and stops cleanly on SIGTERM", async () => {
  const redis = await startRedis();
  const root = await Deno.makeTempDir({ prefix: "msight-perm-" });
  const node = startProcess(
    `${ROOT}bin/msight_launch_video_local_dumper`,
    ["-n", "video_dumper", "-st", "aggregated_video", "--save-dir", `${root}/videos`],
    { ...redis.env, DENO },
    root,
  );
  try {
    await node.waitForLine(new RegExp(`saving segments to ${root}/videos`));
    node.kill("SIGTERM");
    assert.equal(await node.exit, 0);
    assert.ok((await Deno.stat(`${root}/videos`)).isDirectory);
  } finally {
    await node.stop();
    await redis.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("permissions: deno.json runs every node through bin/msight-launch, and bin/ has MSight's launcher names", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as { tasks: Record<string, string> };
  for (const node of NODE_NAMES) {
    assert.equal(config.tasks[node], `bin/msight-launch ${node}`, `task ${node}`);
  }
  const launchers: Record<string, string> = {
    msight_launch_rtsp: "rtsp",
    msight_launch_image_to_video_aggregator: "aggregator",
    msight_launch_video_local_dumper: "dumper",
    msight_launch_aws_video_pusher: "pusher",
    msight_status: "status",
    msight_echo: "echo",
    msight_launch_web: "web",
  };
  for (const [name, node] of Object.entries(launchers)) {
    const text = await Deno.readTextFile(`${ROOT}bin/${name}`);
    assert.match(text, new RegExp(`^exec .*/msight-launch" ${node} "\\$@"$`, "m"), name);
  }
});
