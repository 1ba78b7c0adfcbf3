/**
 * `deno task compile`: the plan (every binary, its node's permissions baked in), the one-line failure where
 * `denort` cannot be had, and, where it can (`DENORT_BIN`, a cached copy, or a reachable download), the real
 * binaries: `--help` of each, and the dumper's tutorial command against a real Redis, writing only where it was
 * compiled to write.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { DENO, ROOT, startProcess } from "../helpers/process.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { waitFor } from "../helpers/net.ts";
import { makeSegment } from "../helpers/segments.ts";
import { encodeMessage } from "../../src/bus/wire.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";
import { BINARIES, compilePlan } from "../../scripts/compile_plan.ts";
import { findDenort } from "../../scripts/denort.ts";

const denort = await findDenort();
const notRun = denort.available ? undefined : `compile test not run: denort unavailable (${denort.reason})`;
// The suite's rule: a test that cannot run says why, in one line.
if (notRun) console.log(notRun);

async function compileScript(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "scripts/compile.ts", ...args],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("compile: the plan builds the six MSight-named binaries, each with its node's permissions", () => {
  const jobs = compilePlan({
    outDir: "out",
    saveDir: "/v",
    spoolDir: "/s",
    wasmCorePaths: ["node_modules/x"],
  });
  assert.deepEqual(jobs.map((j) => j.binary), Object.keys(BINARIES));
  for (const j of jobs) {
    const baked = j.args.filter((a) => a.startsWith("--allow-"));
    assert.deepEqual(baked, permissionFlags(j.node, { saveDir: "/v", spoolDir: "/s" }), j.binary);
    assert.deepEqual(j.args.slice(-3), ["--output", `out/${j.binary}`, `nodes/${j.node}.ts`]);
    assert.ok(j.args.includes("--no-prompt"), j.binary);
    // ffmpeg.wasm is embedded in the aggregator only (dynamic import + worker need --include).
    if (j.node === "aggregator") {
      assert.ok(j.args.includes("node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm"));
      assert.ok(!j.args.includes("--exclude"));
    } else {assert.deepEqual(
        j.args.filter((_, i) => j.args[i - 1] === "--exclude"),
        ["node_modules/x"],
        j.binary,
      );}
  }
  const dumper = jobs.find((j) => j.node === "dumper")!;
  assert.deepEqual(dumper.args.filter((a) => a.startsWith("--allow-write")), ["--allow-write=/v"]);
  // The defaults are the tutorials' relative paths (resolved where the binary runs).
  const [d] = compilePlan({ only: ["msight_launch_video_local_dumper"] });
  assert.ok(d.args.includes("--allow-write=./received_videos"));
  const [p] = compilePlan({ only: ["msight_launch_aws_video_pusher"] });
  assert.ok(p.args.includes("--allow-write=./.msight-spool"));
});

Deno.test("compile: --plan prints one deno compile command per binary; a bad --only is one line, exit 2", async () => {
  const plan = await compileScript(["--plan", "--save-dir", "/var/lib/msight/videos"]);
  assert.equal(plan.code, 0, plan.stderr);
  const lines = plan.stdout.split("\n");
  assert.equal(lines.length, Object.keys(BINARIES).length);
  assert.match(
    lines[2],
    /^deno compile .*--allow-write=\/var\/lib\/msight\/videos .*msight_launch_video_local_dumper nodes\/dumper\.ts$/,
  );
  const bad = await compileScript(["--only", "msight_launch_nope"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /^compile: error: --only msight_launch_nope: expected one of msight_launch_rtsp, /,
  );
  assert.equal(bad.stderr.split("\n").length, 1);
});

Deno.test("compile: a DENORT_BIN that is missing, or is the deno CLI, is one line and exit 1", async () => {
  const missing = await compileScript(["--only", "msight_status"], { DENORT_BIN: "/nonexistent/denort" });
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, "compile: error: DENORT_BIN=/nonexistent/denort: no such file");
  const cli = await compileScript(["--only", "msight_status"], { DENORT_BIN: DENO });
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /^compile: error: DENORT_BIN=.* is the deno CLI, not the denort runtime/);
  assert.equal(cli.stderr.split("\n").length, 1);
});

Deno.test({
  name: "compile: where denort cannot be had, deno task compile fails with one line saying so",
  // Where it can be had, the real compile below runs instead.
  ignore: denort.available,
  async fn() {
    const r = await compileScript(["--only", "msight_status", "--out-dir", await Deno.makeTempDir()]);
    assert.equal(r.code, 1);
    const errors = r.stderr.split("\n").filter((l) => !/^\[compile\]|Check /.test(l));
    assert.equal(errors.length, 1, r.stderr);
    // (A DENORT_BIN set to something unusable is its own one line.)
    assert.match(
      errors[0],
      /^compile: error: (deno compile needs the denort runtime of Deno .* set DENORT_BIN|DENORT_BIN=)/,
    );
  },
});

Deno.test({
  name:
    "compile: the binaries answer --help, and the dumper runs the tutorial command, writing only its grant",
  ignore: !denort.available,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "msight-compile-" });
    const redis = await startRedis();
    const r = new Redis({ host: "127.0.0.1", port: redis.port });
    try {
      // The defaults: the dumper may write ./received_videos of its working directory.
      const build = await compileScript(["--out-dir", `${out}/bin`]);
      assert.equal(build.code, 0, build.stderr);
      for (const [binary, node] of Object.entries(BINARIES)) {
        const help = await new Deno.Command(`${out}/bin/${binary}`, { args: ["--help"], stdout: "piped" })
          .output();
        assert.equal(help.code, 0, binary);
        assert.match(new TextDecoder().decode(help.stdout), new RegExp(`^usage: ${node}`), binary);
      }
      const dumper = `${out}/bin/msight_launch_video_local_dumper`;
      // The tutorial's command, unchanged, from a working directory of the user's.
      const node = startProcess(
        dumper,
        ["-n", "video_dumper", "-st", "aggregated_video", "--save-dir", "./received_videos"],
        redis.env,
        out,
      );
      try {
        await node.waitForLine(/reading aggregated_video over plain pub\/sub/);
        await r.publish(
          "aggregated_video",
          Buffer.from(encodeMessage(await makeSegment("cam", 1769272125.5))),
        );
        await waitFor(
          async () => {
            const names: string[] = [];
            for await (const e of Deno.readDir(`${out}/received_videos`)) names.push(e.name);
            return names.filter((n) => n.endsWith(".json")).length === 1;
          },
          10_000,
          "the segment saved by the compiled dumper",
        );
        node.kill("SIGTERM");
        assert.equal(await node.exit, 0);
      } finally {
        await node.stop();
      }
      // Outside the compiled grant: refused, one line naming the directory.
      const refused = startProcess(
        dumper,
        ["-n", "d2", "-st", "aggregated_video", "--save-dir", `${out}/other`],
        redis.env,
        out,
      );
      assert.equal(await refused.exit, 1);
      const fatal = refused.stderr.filter((l) => / - CRITICAL :: /.test(l));
      assert.equal(fatal.length, 1, refused.stderr.join("\n"));
      assert.match(
        fatal[0],
        new RegExp(`save directory ${out}/other is not writable: Deno's write permission`),
      );
    } finally {
      r.disconnect();
      await redis.stop();
      await Deno.remove(out, { recursive: true });
    }
  },
});
