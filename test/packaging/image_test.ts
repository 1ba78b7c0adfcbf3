/**
 * The Docker images, as far as a machine without Docker can test them: their install steps are
 * `scripts/image-install.sh`, which `scripts/setup.sh` installs with and whose package names are checked against
 * the Debian archive here (`--check`: an apt install candidate for each); and the Dockerfiles and
 * docker-compose.yml agree with each other and with the compile plan (binaries, write grants, health checks,
 * signals, grace periods). The image build itself is not run here.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ROOT } from "../helpers/process.ts";
import { BINARIES } from "../../scripts/compile_plan.ts";

const read = (p: string) => Deno.readTextFile(`${ROOT}${p}`);

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

const hasApt = await run("sh", ["-c", "command -v apt-cache"]).then((r) => r.code === 0);
if (!hasApt) console.log("image package check not run: no apt-cache on this machine (not Debian)");

Deno.test({
  name: "image: every package of the images' install profiles has an apt install candidate (Debian bookworm)",
  ignore: !hasApt,
  async fn() {
    const r = await run("scripts/image-install.sh", [
      "--check",
      "runtime",
      "redis",
      "camera",
      "s3",
      "msight",
      "bus",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^image-install: ok: 28 packages of runtime redis camera s3 msight bus have install candidates/,
    );
    // The test profile's Python packages, by the names the interop suite needs.
    const msight = await run("scripts/image-install.sh", ["--list", "msight"]);
    for (const p of ["python3-av", "python3-opencv", "python3-numpy", "python3-msgpack", "python3-redis"]) {
      assert.ok(msight.stdout.split("\n").includes(p), p);
    }
  },
});

Deno.test("image: image-install.sh lists profiles, refuses an unknown one in one line; setup.sh installs through it", async () => {
  const list = await run("scripts/image-install.sh", ["--list", "runtime"]);
  assert.deepEqual(list.stdout.split("\n"), ["ffmpeg", "ca-certificates", "tini", "curl"]);
  assert.deepEqual((await run("scripts/image-install.sh", ["--list", "browser"])).stdout.split("\n"), [
    "chromium",
  ]);
  const bad = await run("scripts/image-install.sh", ["--check", "nope"]);
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stderr,
    "image-install: error: unknown profile nope: expected runtime, redis, camera, s3, browser, msight or bus",
  );
  const setup = await read("scripts/setup.sh");
  assert.match(setup, /^\s+scripts\/image-install\.sh "\$\{need\[@\]\}"/m);
  assert.ok(
    !/^\s*("\$\{sudo\[@\]\}"\s+)?apt-get\s+install/m.test(setup),
    "setup.sh installs only through image-install.sh",
  );
});

/** The instructions of one stage (`FROM ... AS name`) of a Dockerfile, continuation lines joined. */
function stage(dockerfile: string, name: string): string[] {
  const lines = dockerfile.replace(/\\\n\s*/g, " ").split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  const start = lines.findIndex((l) => new RegExp(`^FROM \\S+ AS ${name}$`).test(l));
  assert.ok(start >= 0, `stage ${name}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith("FROM "));
  return lines.slice(start, end < 0 ? undefined : end);
}

function compileGrants(dockerfile: string): { saveDir: string; spoolDir: string } {
  const line = stage(dockerfile, "build").find((l) => /deno task compile/.test(l)) ?? "";
  return {
    saveDir: line.match(/--save-dir (\S+)/)?.[1] ?? "",
    spoolDir: line.match(/--spool-dir (\S+)/)?.[1] ?? "",
  };
}

for (const file of ["Dockerfile", "Dockerfile.cuda"]) {
  Deno.test(`image: ${file} builds the binaries with absolute grants and runs them as a non-root user`, async () => {
    const text = await read(file);
    const build = stage(text, "build");
    assert.ok(build.some((l) => l === "RUN scripts/setup.sh build"), "Deno installed as setup.sh does");
    const grants = compileGrants(text);
    assert.equal(grants.saveDir, "/var/lib/msight/videos");
    assert.equal(grants.spoolDir, "/var/lib/msight/spool");
    const rt = stage(text, "runtime");
    assert.ok(
      rt.some((l) => /^RUN \/tmp\/image-install\.sh --clean runtime\b/.test(l)),
      "installs via the script",
    );
    assert.ok(rt.some((l) => l.startsWith("COPY --from=build /out/ /usr/local/bin/")));
    const user = rt.filter((l) => l.startsWith("USER ")).at(-1);
    assert.equal(user, "USER msight");
    assert.ok(
      rt.some((l) =>
        /mkdir -p \/var\/lib\/msight\/videos \/var\/lib\/msight\/spool .*chown -R msight/.test(l)
      ),
    );
    assert.ok(
      rt.some((l) =>
        /^HEALTHCHECK .*curl -fsS "http:\/\/127\.0\.0\.1:\$\{MSIGHT_HEALTH_PORT:-9100\}\/healthz"/.test(l)
      ),
    );
    assert.ok(rt.includes("STOPSIGNAL SIGTERM"));
    assert.ok(rt.includes('ENTRYPOINT ["/usr/bin/tini", "--"]'));
    const cmd = JSON.parse(rt.find((l) => l.startsWith("CMD "))!.slice(4)) as string[];
    assert.ok(cmd[0] in BINARIES, `CMD runs a compiled binary: ${cmd[0]}`);
    if (file === "Dockerfile.cuda") {
      assert.match(text, /^ARG CUDA_BASE=nvidia\/cuda:\S+-base-ubuntu24\.04$/m);
      assert.ok(
        rt.some((l) => /^ENV NVIDIA_DRIVER_CAPABILITIES=\S*\bvideo\b/.test(l)),
        "NVDEC needs the video capability",
      );
      // The base image's LD_LIBRARY_PATH would make Deno refuse every ffmpeg spawn under scoped --allow-run.
      assert.ok(rt.includes("ENV LD_LIBRARY_PATH="), "LD_LIBRARY_PATH emptied");
    }
  });
}

interface Service {
  command?: string[];
  stop_grace_period?: string;
  healthcheck?: { test: string[] };
  volumes?: string[];
  environment?: Record<string, string | null>;
  build?: { target?: string };
  depends_on?: Record<string, unknown>;
}

Deno.test("image: docker-compose.yml runs the tutorials' commands with the compiled binaries inside their grants", async () => {
  const compose = parse(await read("docker-compose.yml"), { merge: true }) as {
    services: Record<string, Service>;
  };
  const grants = compileGrants(await read("Dockerfile"));
  const s = compose.services;
  assert.deepEqual(Object.keys(s).sort(), ["aggregator", "camera", "dumper", "pusher", "redis", "rtsp"]);
  assert.equal(s.camera.build?.target, "demo-camera");
  const nodes: Record<string, string> = {
    rtsp: "msight_launch_rtsp",
    aggregator: "msight_launch_image_to_video_aggregator",
    dumper: "msight_launch_video_local_dumper",
    pusher: "msight_launch_aws_video_pusher",
  };
  const flag = (cmd: string[], name: string) => cmd[cmd.indexOf(name) + 1];
  for (const [service, binary] of Object.entries(nodes)) {
    const svc = s[service];
    const cmd = svc.command ?? [];
    assert.equal(cmd[0], binary, service);
    assert.equal(svc.build?.target, "runtime", service);
    // Graceful stop: long enough for --shutdown-grace and the pusher's drain.
    assert.ok(parseInt(svc.stop_grace_period ?? "0") >= 30, `${service} stop_grace_period`);
    assert.equal(flag(cmd, "--metrics-port"), "9100", service);
    assert.deepEqual(
      svc.healthcheck?.test,
      ["CMD", "curl", "-fsS", "http://127.0.0.1:9100/healthz"],
      service,
    );
    assert.equal(svc.environment?.REDIS_URL, "redis://redis:6379/0", service);
    assert.ok("redis" in (svc.depends_on ?? {}), service);
  }
  // The tutorials' flags, unchanged.
  assert.deepEqual(s.rtsp.command!.slice(1, 9), [
    "-n",
    "rtsp_node",
    "-pt",
    "rtsp_topic",
    "--sensor-name",
    "rtsp_sensor",
    "-u",
    "rtsp://camera:8554/live.stream",
  ]);
  assert.deepEqual(s.aggregator.command!.slice(1, 13), [
    "-n",
    "image-aggregator",
    "-st",
    "rtsp_topic",
    "-pt",
    "aggregated_video",
    "--fps",
    "10",
    "--buffer-size",
    "100",
    "--overlap-size",
    "0",
  ]);
  // Each sink writes inside the directory its binary was compiled to write, on a volume.
  const saveDir = flag(s.dumper.command!, "--save-dir");
  assert.ok(saveDir === grants.saveDir || saveDir.startsWith(`${grants.saveDir}/`), saveDir);
  assert.ok(s.dumper.volumes?.some((v) => v.endsWith(`:${grants.saveDir}`)));
  const spoolDir = flag(s.pusher.command!, "--spool-dir");
  assert.ok(spoolDir.startsWith(`${grants.spoolDir}/`), spoolDir);
  assert.ok(s.pusher.volumes?.some((v) => v.endsWith(`:${grants.spoolDir}`)));
  for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"]) {
    assert.ok(k in (s.pusher.environment ?? {}), k);
  }
  assert.ok(s.redis.healthcheck && s.camera.healthcheck);
});

Deno.test("image: .dockerignore keeps local installs and outputs out of the build context, the demo frames in", async () => {
  const ignore = (await read(".dockerignore")).split("\n").map((l) => l.trim());
  for (const p of [".tools", "node_modules", "dist", ".git", ".env"]) assert.ok(ignore.includes(p), p);
  assert.ok(ignore.includes("!test/fixtures/mcity-gs-ne/"));
});
