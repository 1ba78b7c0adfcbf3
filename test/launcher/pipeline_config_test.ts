/**
 * The pipeline file of `deno task up`: every example loads; a bad file is one line naming the key path (and line),
 * checked with each node's own flag specs before anything starts.
 */
import assert from "node:assert/strict";
import { busEnv } from "../../src/launcher/bus_plan.ts";
import { parsePipeline, type Pipeline } from "../../src/launcher/pipeline_config.ts";
import { nodeProcess } from "../../src/launcher/pipeline_runner.ts";
import { DEFAULT_CAMERAS_PER_PROCESS, planProcesses } from "../../src/launcher/process_plan.ts";
import { splitGroup } from "../../src/node/node_group.ts";
import { UsageError } from "../../src/runtime/errors.ts";
import { DENO, startProcess } from "../helpers/process.ts";

const load = (yaml: string, env: Record<string, string> = {}): Pipeline =>
  parsePipeline(yaml, "pipeline.yaml", (k) => env[k]);

/** The one-line message a bad file gets. */
function errorOf(yaml: string, env: Record<string, string> = {}): string {
  try {
    load(yaml, env);
  } catch (err) {
    assert.ok(err instanceof UsageError, `a UsageError (exit 2), got ${err}`);
    assert.ok(!err.message.includes("\n"), `one line: ${err.message}`);
    return err.message;
  }
  assert.fail("expected the file to be refused");
}

/** A valid three-node pipeline; tests break one thing in it. */
const TUTORIAL = `
redis: {start: true}
nodes:
  - name: rtsp_node
    node: rtsp
    flags:
      publish-topic: rtsp_topic
      sensor-name: rtsp_sensor
      url: rtsp://localhost:8554/live.stream
  - name: image-aggregator
    node: aggregator
    flags:
      subscribe-topic: rtsp_topic
      publish-topic: aggregated_video
      fps: 10
      buffer-size: 100
      overlap-size: 0
  - name: video_dumper
    node: dumper
    flags:
      subscribe-topic: aggregated_video
      save-dir: ./received_videos
`;

Deno.test("every file in examples/ loads, with the environment it needs", async () => {
  const env = {
    AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
    AWS_SECRET_ACCESS_KEY: "secret/with$dollar",
    S3_BUCKET: "my-bucket",
  };
  const files: string[] = [];
  for await (const e of Deno.readDir("examples")) if (e.name.endsWith(".yaml")) files.push(e.name);
  assert.deepEqual(files.sort(), [
    "multi_camera.yaml",
    "nats.yaml",
    "redis_cluster.yaml",
    "reference.yaml",
    "tutorial_dumper.yaml",
    "tutorial_s3.yaml",
  ]);
  const byFile = new Map<string, Pipeline>();
  for (const f of files) {
    const p = parsePipeline(
      await Deno.readTextFile(`examples/${f}`),
      f,
      (k) => (env as Record<string, string>)[k],
    );
    assert.deepEqual(p.warnings, [], f);
    byFile.set(f, p);
  }

  // The first tutorial's commands, verbatim (`--long=value` each), in pipeline order, and the --max-fps that `up`
  // gives the camera from the aggregator that reads it.
  const dumper = byFile.get("tutorial_dumper.yaml")!;
  assert.deepEqual(dumper.redis, { mode: "url", url: "redis://localhost:6379/0" });
  assert.deepEqual(dumper.nodes.map((n) => [n.type, n.argv.join(" ")]), [
    [
      "rtsp",
      "--name=rtsp_node --publish-topic=rtsp_topic --sensor-name=rtsp_sensor --url=rtsp://localhost:8554/live.stream " +
      "--gpu=0 --rtsp-transport=tcp --max-fps=10",
    ],
    [
      "aggregator",
      "--name=image-aggregator --subscribe-topic=rtsp_topic --publish-topic=aggregated_video --fps=10 " +
      "--buffer-size=100 --overlap-size=0",
    ],
    ["dumper", "--name=video_dumper --subscribe-topic=aggregated_video --save-dir=./received_videos"],
  ]);

  // Secrets come from the environment into the nodes' environment, not their command lines.
  const s3 = byFile.get("tutorial_s3.yaml")!;
  assert.equal(s3.env.AWS_SECRET_ACCESS_KEY, "secret/with$dollar");
  assert.equal(s3.env.AWS_ENDPOINT_URL_S3, "");
  const pusher = s3.nodes.find((n) => n.type === "pusher")!;
  assert.equal(pusher.flags.bucketName, "my-bucket");
  assert.ok(!pusher.argv.join(" ").includes("secret"));

  // Three cameras (sugar for rtsp nodes), then one aggregator, then both sinks.
  const multi = byFile.get("multi_camera.yaml")!;
  assert.deepEqual(multi.redis, { mode: "start" });
  assert.deepEqual(multi.nodes.map((n) => `${n.name}:${n.type}`), [
    "gs_ne:rtsp",
    "gs_nw:rtsp",
    "gs_se:rtsp",
    "aggregator:aggregator",
    "dumper:dumper",
    "pusher:pusher",
  ]);
  const se = multi.nodes[2];
  assert.equal(se.flags.sensorName, "gs_se");
  assert.equal(se.flags.publishTopic, "rtsp_topic");
  assert.equal(se.flags.resizeRatio, 0.5);
  assert.equal(se.flags.rtspTransport, "tcp"); // from defaults.rtsp
  assert.ok(multi.nodes.every((n) => n.flags.loggingLevel === "INFO")); // from defaults.all
});

Deno.test("a bad flag value names the key path and the line, with the node's own message", () => {
  assert.equal(
    errorOf(TUTORIAL.replace("fps: 10", "fps: 0")),
    "pipeline.yaml: nodes[1].flags.fps: --fps 0 is invalid: expected a number > 0 (line 15)",
  );
  assert.equal(
    errorOf(TUTORIAL.replace("buffer-size: 100", "buffer-size: lots")),
    "pipeline.yaml: nodes[1].flags.buffer-size: --buffer-size lots is invalid: expected an integer (line 16)",
  );
  assert.match(
    errorOf(TUTORIAL.replace("save-dir: ./received_videos", "save-dir: ./v\n      timezone: locl")),
    /^pipeline\.yaml: nodes\[2\]\.flags\.timezone: --timezone locl is invalid: expected one of utc, local \(did you mean local\?\) \(line 23\)$/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("url: rtsp://localhost:8554/live.stream", "url: http://cam/x")),
    /^pipeline\.yaml: nodes\[0\]\.flags\.url: invalid --url "http:\/\/cam\/x": expected rtsp:\/\//,
  );
  // A list where one value belongs.
  assert.match(
    errorOf(TUTORIAL.replace("fps: 10", "fps: [10, 20]")),
    /^pipeline\.yaml: nodes\[1\]\.flags\.fps: expected a single value, got a list/,
  );
});

Deno.test("unknown keys at every level are refused, with a did-you-mean", () => {
  assert.equal(
    errorOf(TUTORIAL.replace("fps: 10", "fsp: 10")),
    "pipeline.yaml: nodes[1].flags.fsp: the aggregator node has no flag fsp (did you mean fps?) (line 15)",
  );
  // Short option names and dashes point to the long name.
  assert.match(
    errorOf(TUTORIAL.replace("publish-topic: rtsp_topic", "pt: rtsp_topic")),
    /nodes\[0\]\.flags\.pt: the rtsp node has no flag pt \(did you mean publish-topic\?\)/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("save-dir:", "--save-dir:")),
    /nodes\[2\]\.flags\.--save-dir: .*\(did you mean save-dir\?\)/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("nodes:", "node:")),
    /^pipeline\.yaml: node: unknown key \(did you mean nodes\?\)/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("    node: dumper", "    node: dumper\n    restrat: false")),
    /^pipeline\.yaml: nodes\[2\]\.restrat: unknown key \(did you mean restart\?\) \(line 20\)$/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("redis: {start: true}", "redis: {start: true, prot: 6390}")),
    /^pipeline\.yaml: redis\.prot: unknown key \(did you mean port\?\)/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("node: dumper", "node: dumpr")),
    /^pipeline\.yaml: nodes\[2\]\.node: dumpr is not a node type: expected one of rtsp, aggregator, dumper, pusher, web \(did you mean dumper\?\)/,
  );
  // The pipeline file is the config: --config inside it is refused.
  assert.match(
    errorOf(TUTORIAL.replace("fps: 10", "config: x.yaml")),
    /nodes\[1\]\.flags\.config: config cannot be set here/,
  );
});

Deno.test("${ENV} substitution: values from the environment, defaults, a missing variable named with its key", () => {
  // (A function as replacement: in a replacement string, `$$` would mean one `$`.)
  const yaml = TUTORIAL.replace(
    "save-dir: ./received_videos",
    () => "save-dir: ${SAVE_DIR:-./videos}/$${literal}",
  )
    .replace("fps: 10", "fps: ${FPS}");
  const p = load(yaml, { FPS: "12.5" });
  assert.equal(p.nodes[1].flags.fps, 12.5); // text from the environment, coerced by the flag's type
  assert.equal(p.nodes[2].flags.saveDir, "./videos/${literal}");
  assert.equal(load(yaml, { FPS: "5", SAVE_DIR: "/data" }).nodes[2].flags.saveDir, "/data/${literal}");
  assert.equal(
    errorOf(yaml),
    "pipeline.yaml: nodes[1].flags.fps: environment variable FPS is not set (set it, or give a default: " +
      "${FPS:-value}) (line 15)",
  );
  // A substituted value is checked like any other.
  assert.match(
    errorOf(yaml, { FPS: "-1" }),
    /nodes\[1\]\.flags\.fps: --fps -1 is invalid: expected a number > 0/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("redis: {start: true}", "redis: ${REDIS URL}")),
    /^pipeline\.yaml: redis: \$\{REDIS URL\} is not a variable reference/,
  );
  // Substitution happens in values, after parsing: a value cannot change the file's structure.
  const tricky = load(TUTORIAL.replace("sensor-name: rtsp_sensor", "sensor-name: ${NAME}"), {
    NAME: "cam: {x: 1} # not a comment",
  });
  assert.equal(tricky.nodes[0].flags.sensorName, "cam: {x: 1} # not a comment");
});

Deno.test("required flags, cross-flag checks, names and Redis are checked before anything starts", () => {
  assert.equal(
    errorOf(TUTORIAL.replace("      buffer-size: 100\n", "")),
    "pipeline.yaml: nodes[1].flags: buffer-size is required: the aggregator node needs --buffer-size (line 12)",
  );
  assert.match(
    errorOf(TUTORIAL.replace("overlap-size: 0", "overlap-size: 100")),
    /^pipeline\.yaml: nodes\[1\]\.flags\.overlap-size: --overlap-size 100 equal to --buffer-size is refused: MSight then/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("overlap-size: 0", "overlap-size: 101")),
    /^pipeline\.yaml: nodes\[1\]\.flags\.overlap-size: --overlap-size 101 is invalid: expected fewer than --buffer-size 100/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("name: video_dumper", "name: rtsp_node")),
    /^pipeline\.yaml: nodes\[2\]\.name: rtsp_node is also the name of nodes\[0\]/,
  );
  // Two sinks with one MSight node name would share one consumer group.
  assert.match(
    errorOf(
      TUTORIAL.replace(
        "      save-dir: ./received_videos",
        "      save-dir: ./v\n      name: image-aggregator",
      ),
    ),
    /^pipeline\.yaml: nodes\[2\]\.flags\.name: node name image-aggregator is also used by nodes\[1\]/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("name: video_dumper", "name: redis")),
    /nodes\[2\]\.name: "redis" is the launcher's own/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("redis: {start: true}", "redis: {start: true, url: redis://h:1/0}")),
    /^pipeline\.yaml: redis\.url: give either url \(an existing Redis\) or start: true, not both/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("redis: {start: true}", "redis: http://h/")),
    /^pipeline\.yaml: redis: redis url "http:\/\/h\/" is invalid: expected a redis:\/\/ or rediss:\/\/ URL \(line 2\)/,
  );
  assert.match(
    errorOf(
      TUTORIAL.replace("redis: {start: true}", "redis: {start: true}\nenv: {REDIS_URL: redis://x:1/0}"),
    ),
    /^pipeline\.yaml: env\.REDIS_URL: the Redis is set by redis: above/,
  );
  assert.match(errorOf("nodes: []"), /^pipeline\.yaml: nodes: expected at least one node/);
  assert.match(
    errorOf("- a\n- b"),
    /^pipeline\.yaml: \(top level\): expected a mapping with keys redis, device/,
  );
  assert.match(
    errorOf("nodes:\n  - name: x\n    node: rtsp\n   flags: {}"),
    /^pipeline\.yaml: not valid YAML: .* \(line \d\)/,
  );
  assert.match(
    errorOf(TUTORIAL.replace("node: dumper", "node: dumper\n    restart: maybe")),
    /nodes\[2\]\.restart: expected true or false, got "maybe"/,
  );
});

Deno.test("defaults and cameras: errors point at where the value was written", () => {
  const cams = `
defaults:
  rtsp: {gpu: -5}
cameras:
  - name: cam_a
    url: rtsp://10.0.0.1/s
nodes:
  - {name: agg, node: aggregator, flags: {st: x}}
`;
  assert.match(
    errorOf(cams),
    /^pipeline\.yaml: defaults\.rtsp\.gpu: --gpu -5 is invalid: expected a number ≥ -1 \(line 3\)/,
  );
  assert.match(
    errorOf("defaults:\n  all: {transport: stream}\nnodes: []"),
    /^pipeline\.yaml: defaults\.all\.transport: transport is not a flag every node takes \(give it under defaults\.<node type>\)/,
  );
  assert.match(
    errorOf("cameras:\n  - name: cam_a\n    topic: t\n"),
    /^pipeline\.yaml: cameras\[0\]\.url: missing: expected rtsp:\/\/HOST\/PATH/,
  );
  assert.match(
    errorOf("cameras:\n  - name: cam_a\n    url: rtsp://h/s\n    flags: {url: rtsp://h/t}\n"),
    /^pipeline\.yaml: cameras\[0\]\.flags\.url: give it once, as cameras\[0\]\.url/,
  );
  // Sinks listed first still start after their sources; a subscription nobody publishes is a warning.
  const p = load(`
nodes:
  - {name: d, node: dumper, flags: {subscribe-topic: aggregated_vid, save-dir: /tmp/x}}
  - {name: a, node: aggregator, flags: {subscribe-topic: frames, publish-topic: aggregated_video, buffer-size: 10, overlap-size: 0}}
cameras:
  - {name: cam, url: "rtsp://h/s", topic: frames, flags: {sensor-name: gs-ne}}
`);
  assert.deepEqual(p.nodes.map((n) => n.name), ["cam", "a", "d"]);
  assert.equal(p.nodes[0].flags.sensorName, "gs-ne");
  assert.deepEqual(p.warnings, [
    "pipeline.yaml: nodes[0].flags.subscribe-topic: no node of this file publishes on aggregated_vid " +
    "(did you mean aggregated_video?)",
  ]);
});

Deno.test("up refuses a bad file with one line and exit 2, before starting anything", async () => {
  const dir = await Deno.makeTempDir({ prefix: "msight-up-bad-" });
  try {
    const file = `${dir}/pipeline.yaml`;
    await Deno.writeTextFile(file, TUTORIAL.replace("fps: 10", "fps: 0"));
    const p = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", file], {});
    assert.equal(await p.exit, 2);
    assert.deepEqual(p.stderr, [
      `${file}: nodes[1].flags.fps: --fps 0 is invalid: expected a number > 0 (line 15)`,
    ]);
    assert.deepEqual(p.stdout, []);
    const missing = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", `${dir}/nope.yaml`], {});
    assert.equal(await missing.exit, 2);
    assert.deepEqual(missing.stderr, [`${dir}/nope.yaml: cannot read it (no such file)`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a web console in a pipeline file: it starts after the sinks' producers; off loopback it needs a token", () => {
  const web = `
  - name: console
    node: web
    flags:
      save-dir: ./received_videos
      port: 8080`;
  const p = load(TUTORIAL + web);
  assert.deepEqual(p.nodes.map((n) => n.name), ["rtsp_node", "image-aggregator", "video_dumper", "console"]);
  assert.ok(p.nodes[3].argv.includes("--save-dir=./received_videos"));
  assert.match(
    errorOf(TUTORIAL + web + "\n      host: 0.0.0.0"),
    /^pipeline\.yaml: nodes\[3\]\.flags\.host: --host 0\.0\.0\.0 is not loopback: give --auth-token/,
  );
  assert.equal(
    load(TUTORIAL + web + "\n      host: 0.0.0.0\n      auth-token: long-enough-token").nodes.length,
    4,
  );
});

Deno.test("bus: the examples' back ends, credentials from the environment into the URL the nodes get, not argv", async () => {
  const read = (f: string) => Deno.readTextFile(`examples/${f}`);
  const cluster = parsePipeline(await read("redis_cluster.yaml"), "redis_cluster.yaml", () => undefined);
  assert.deepEqual(cluster.bus, {
    backend: "redis-cluster",
    url: "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
    display: "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
  });
  assert.equal(cluster.redis, undefined);
  const withPw = parsePipeline(
    await read("redis_cluster.yaml"),
    "f",
    (k) => (k === "REDIS_PASSWORD" ? "p@ss:w" : undefined),
  );
  assert.equal(withPw.bus?.url, "redis+cluster://:p%40ss%3Aw@127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002");
  assert.ok(!withPw.bus?.display.includes("p%40ss"));
  const nats = parsePipeline(
    await read("nats.yaml"),
    "nats.yaml",
    (k) => ({ NATS_USER: "edge", NATS_PASSWORD: "s3cret/+" } as Record<string, string>)[k],
  );
  assert.deepEqual(nats.bus, {
    backend: "nats",
    url: "nats://edge:s3cret%2F%2B@127.0.0.1:4222",
    display: "nats://127.0.0.1:4222",
  });
  assert.deepEqual(busEnv(nats.bus!), {
    MSIGHT_BUS_URL: "nats://edge:s3cret%2F%2B@127.0.0.1:4222",
    MSIGHT_PUBSUB_BACKEND: "nats",
  });
  for (const p of [cluster, withPw, nats]) {
    assert.deepEqual(p.nodes.map((n) => n.type), ["rtsp", "aggregator", "dumper", "dumper"]);
    assert.ok(p.nodes.every((n) => !n.argv.some((a) => /bus-url|s3cret|p%40ss/.test(a))));
    assert.deepEqual(p.nodes.slice(2).map((n) => n.flags.groupId), ["archive", "archive"]);
  }
  // The other forms: a URL alone, the servers as one text, a standalone Redis; NATS with the registry in Redis.
  assert.deepEqual(load("bus: nats://h1,h2:4223\n" + TUTORIAL.replace("redis: {start: true}", "")).bus, {
    backend: "nats",
    url: "nats://h1,h2:4223",
    display: "nats://h1:4222,nats://h2:4223",
  });
  assert.equal(
    load(TUTORIAL.replace("redis: {start: true}", "bus: {backend: redis-cluster, servers: 'a:7000, b'}")).bus
      ?.url,
    "redis+cluster://a:7000,b:6379",
  );
  assert.equal(
    load(TUTORIAL.replace("redis: {start: true}", "bus: {backend: redis, servers: [redis://db:6380]}")).bus
      ?.url,
    "redis://db:6380",
  );
  const registry = load(TUTORIAL + "bus: {backend: nats, servers: [nats://n1:4222]}\n");
  assert.deepEqual([registry.bus?.backend, registry.redis], ["nats", { mode: "start" }]);
});

Deno.test("bus: a bad value is one line naming it and what is valid", () => {
  const noRedis = TUTORIAL.replace("redis: {start: true}", "");
  const bad = (bus: string, extra = "") => errorOf(`${noRedis}\nbus: ${bus}\n${extra}`);
  assert.match(
    bad("{backend: kafka, servers: ['k1:9092']}"),
    /^pipeline\.yaml: bus\.backend: kafka: the Kafka back end is not supported yet; supported back ends: redis .*nats \(line \d+\)$/,
  );
  assert.match(
    bad("{backend: natz, servers: [h]}"),
    /bus\.backend: "natz" is not a back end: expected redis-cluster, nats, redis \(did you mean nats\?\)/,
  );
  assert.match(
    bad("{backend: nats}"),
    /bus\.servers: missing: expected a list like \[10\.0\.0\.1:4222, 10\.0\.0\.2:4222\]/,
  );
  assert.match(bad("{backend: nats, servers: []}"), /bus\.servers: empty: expected at least one server/);
  assert.match(
    bad("{backend: nats, servers: [h1:4222, 'h2:99999']}"),
    /bus\.servers\[1\]: "h2:99999" is not a server: expected host:port, like 10\.0\.0\.1:4222/,
  );
  assert.match(
    bad("{backend: redis, servers: [a:1, b:2]}"),
    /bus\.servers: a standalone Redis is one server \(got 2\): for several use backend: redis-cluster/,
  );
  assert.match(bad("{urll: nats://h}"), /bus\.urll: unknown key \(did you mean url\?\)/);
  assert.match(
    bad("{url: nats://h, backend: nats}"),
    /bus\.url: give either url or backend with servers, not both/,
  );
  assert.match(
    bad("{url: 'ftp://u:topsecret@h'}"),
    /^pipeline\.yaml: bus\.url: the URL "ftp:\/\/\*\*\*:\*\*\*@h" is invalid: expected a redis:\/\/, .* or nats:\/\/h1:4222,h2:4222 URL/,
  );
  assert.match(
    bad("{url: 'nats://u:topsecret@h:0'}"),
    /bus\.url: the URL server "h:0" is invalid: expected host:port/,
  );
  assert.match(
    bad("{url: 'nats://u:topsecret@h', password: x}"),
    /bus\.url: the URL has credentials and so do/,
  );
  assert.match(bad("{url: nats://h, password: x}"), /bus\.password: a NATS password needs a username/);
  assert.match(
    bad("{url: nats://h, username: u}"),
    /bus\.username: a NATS user needs a password \(a token goes in/,
  );
  assert.match(bad("[nats://h]"), /^pipeline\.yaml: bus: expected a bus URL/);
  // Set in one place: the nodes would ignore the other, or two places would say one thing.
  assert.match(
    bad("nats://h", "env: {MSIGHT_PUBSUB_BACKEND: redis}"),
    /env\.MSIGHT_PUBSUB_BACKEND: the back end is set by bus: above: set it in one place/,
  );
  assert.match(
    bad("nats://h", "env: {MSIGHT_NATS_SERVERS: \"['nats://x:4222']\"}"),
    /env\.MSIGHT_NATS_SERVERS: the NATS/,
  );
  assert.match(
    bad("redis+cluster://h:7000", "env: {MSIGHT_REDIS_MESSAGE_BROKER_PASSWORD: x}"),
    /env\.MSIGHT_REDIS_MESSAGE_BROKER_PASSWORD: unused: the nodes reach Redis through bus: above \(credentials: bus\.username/,
  );
  assert.equal(
    load(`${noRedis}\nbus: nats://h\nenv: {MSIGHT_NATS_TOKEN: t, REDIS_URL: "redis://r:6379/0"}`).bus
      ?.backend,
    "nats",
  );
  assert.match(
    errorOf(`${TUTORIAL}\nbus: redis+cluster://h:7000`),
    /^pipeline\.yaml: redis: unused: on a Redis Cluster bus the cluster holds everything: remove redis: \(line 2\)$/,
  );
  assert.match(
    errorOf(`${TUTORIAL}\nbus: redis://h:6379`),
    /redis: bus: already names the Redis of every node: give it once/,
  );
  // The web console runs on every back end, as the other nodes do.
  const web = `${noRedis}  - {name: console, node: web, flags: {save-dir: ./v}}\nbus: nats://h\n`;
  assert.equal(load(web).nodes.length, 4);
});

Deno.test("up --check shows the bus without its credentials", async () => {
  const p = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", "--check", "examples/nats.yaml"], {
    NATS_USER: "edge",
    NATS_PASSWORD: "pw-not-shown",
    REDIS_URL: "",
  });
  assert.equal(await p.exit, 0, p.stderr.join("\n"));
  assert.ok(
    p.stdout.includes(
      "  bus: nats at nats://127.0.0.1:4222; registry in JetStream key-value buckets MSIGHT_NODES, MSIGHT_TOPICS " +
        "(MSIGHT_BUS_URL of every node)",
    ),
    p.stdout.join("\n"),
  );
  assert.ok(!p.stdout.concat(p.stderr).some((l) => l.includes("pw-not-shown")));
});

Deno.test("up thins at the source: an rtsp node without max-fps gets the --fps of the aggregators reading its topic", () => {
  const rtspArgv = (p: Pipeline, name = "rtsp_node") => p.nodes.find((n) => n.name === name)!.argv;
  const maxFpsOf = (p: Pipeline, name = "rtsp_node") =>
    rtspArgv(p, name).filter((a) => a.startsWith("--max-fps"));

  // The tutorial: the aggregator at --fps 10 reads rtsp_topic, so the camera publishes at most 10 frames a second.
  const p = load(TUTORIAL);
  assert.deepEqual(maxFpsOf(p), ["--max-fps=10"]);
  assert.equal(p.nodes[0].effective.maxFps, 10);
  assert.deepEqual(p.notes, [
    "rtsp_node: --max-fps 10, as image-aggregator (--fps 10) reads rtsp_topic " +
    "(set max-fps in the file to choose; 0: every frame)",
  ]);

  // What the file says wins, in the node's flags or in defaults.rtsp; 0 is every frame.
  const explicit = load(TUTORIAL.replace("      url: rtsp://", "      max-fps: 0\n      url: rtsp://"));
  assert.deepEqual(maxFpsOf(explicit), ["--max-fps=0"]);
  assert.deepEqual(explicit.notes, []);
  const byDefault = load("defaults: {rtsp: {max-fps: 12.5}}\n" + TUTORIAL);
  assert.deepEqual(maxFpsOf(byDefault), ["--max-fps=12.5"]);

  // Several aggregators on the topic: the fastest; an aggregator's --gap takes every (gap+1)-th frame, and so does
  // the rtsp node's own --gap.
  const two = load(
    TUTORIAL + `
  - name: fast-aggregator
    node: aggregator
    flags: {subscribe-topic: rtsp_topic, publish-topic: fast_video, fps: 15, buffer-size: 50, overlap-size: 0}`,
  );
  assert.deepEqual(maxFpsOf(two), ["--max-fps=15"]);
  const gapped = load(TUTORIAL.replace("      fps: 10", "      fps: 10\n      gap: 1"));
  assert.deepEqual(maxFpsOf(gapped), ["--max-fps=20"]);
  const ownGap = load(TUTORIAL.replace("      url: rtsp://", "      gap: 2\n      url: rtsp://"));
  assert.deepEqual(maxFpsOf(ownGap), ["--max-fps=30"]);

  // A reader of the topic that is not an aggregator, or no reader in the file: every frame, as MSight.
  const dumped = load(
    TUTORIAL + `
  - name: frame_dumper
    node: dumper
    flags: {subscribe-topic: rtsp_topic, save-dir: ./frames}`,
  );
  assert.deepEqual(maxFpsOf(dumped), []);
  assert.deepEqual(dumped.notes, []);
  const alone = load(TUTORIAL.replace("      publish-topic: rtsp_topic", "      publish-topic: other_topic"));
  assert.deepEqual(maxFpsOf(alone), []);

  // Cameras (the shorthand for rtsp nodes) are thinned alike, each for its own topic's aggregators.
  const cams = load(`
cameras:
  - {name: cam_a, url: rtsp://10.0.0.5/a}
  - {name: cam_b, url: rtsp://10.0.0.6/b, topic: b_topic}
nodes:
  - name: agg
    node: aggregator
    flags: {subscribe-topic: rtsp_topic, publish-topic: v, fps: 5, buffer-size: 50, overlap-size: 0}
  - name: agg_b
    node: aggregator
    flags: {subscribe-topic: b_topic, publish-topic: v, fps: 10, buffer-size: 50, overlap-size: 0}
`);
  assert.deepEqual(maxFpsOf(cams, "cam_a"), ["--max-fps=5"]);
  assert.deepEqual(maxFpsOf(cams, "cam_b"), ["--max-fps=10"]);
});

Deno.test("up sizes the durable frame stream: an rtsp node without frame-stream-max-age keeps frames as long as its aggregators' longest segment needs after a crash", () => {
  const ageOf = (p: Pipeline, name = "rtsp_node") =>
    p.nodes.find((n) => n.name === name)!.argv.filter((a) => a.startsWith("--frame-stream-max-age"));

  // The tutorial (100 frames at 10 fps, --max-idle 5): 10 + 5 + 15 s to restart = the flag's default, left alone.
  const tutorial = load(TUTORIAL);
  assert.deepEqual(ageOf(tutorial), []);
  assert.equal(tutorial.nodes[0].effective.frameStreamMaxAge, 30);
  assert.ok(!tutorial.notes.some((n) => n.includes("frame-stream")));

  // Minute-long segments: 60 + 5 + 15; 30 s would let a crash lose the open segment's first frames.
  const minute = load(TUTORIAL.replace("      buffer-size: 100", "      buffer-size: 600"));
  assert.deepEqual(ageOf(minute), ["--frame-stream-max-age=80"]);
  assert.ok(
    minute.notes.includes(
      "rtsp_node: --frame-stream-max-age 80, for the longest segment of image-aggregator (--buffer-size ÷ --fps + " +
        "--max-idle) and 15 s to restart; set it in the file to choose",
    ),
    minute.notes.join("\n"),
  );
  // Short ones hold less in Redis (2 + 5 + 15); a fraction of a second rounds up.
  assert.deepEqual(ageOf(load(TUTORIAL.replace("      buffer-size: 100", "      buffer-size: 20"))), [
    "--frame-stream-max-age=22",
  ]);
  assert.deepEqual(ageOf(load(TUTORIAL.replace("      buffer-size: 100", "      buffer-size: 25"))), [
    "--frame-stream-max-age=23",
  ]);

  // Every reader on plain pub/sub: nobody reads the stream, so it is off.
  const pubsub = load(TUTORIAL.replace("      fps: 10", "      fps: 10\n      transport: pubsub"));
  assert.deepEqual(ageOf(pubsub), ["--frame-stream-max-age=0"]);

  // The file's value wins; a reader that is not an aggregator leaves the node's default.
  const explicit = load(
    TUTORIAL.replace("      buffer-size: 100", "      buffer-size: 600")
      .replace("      url: rtsp://", "      frame-stream-max-age: 45\n      url: rtsp://"),
  );
  assert.deepEqual(ageOf(explicit), ["--frame-stream-max-age=45"]);
  const dumped = load(
    TUTORIAL.replace("      buffer-size: 100", "      buffer-size: 600") + `
  - name: frame_dumper
    node: dumper
    flags: {subscribe-topic: rtsp_topic, save-dir: ./frames}`,
  );
  assert.deepEqual(ageOf(dumped), []);
});

Deno.test("cameras_per_process: up runs the RTSP nodes that run alike up to N to a process, each its own node", async () => {
  const cameras = (n: number, extra = "") =>
    `cameras:\n${
      Array.from({ length: n }, (_, i) => `  - {name: cam${i}, url: rtsp://h/${i}${extra}}`).join("\n")
    }\n`;
  const names = (p: Pipeline) =>
    planProcesses(p.nodes, p.camerasPerProcess).map((x) =>
      `${x.name}=${x.nodes.map((n) => n.name).join("+")}`
    );

  // The default: eight to a process (cameras: come before nodes:); the aggregator and the dumper keep their own.
  const ten = load(`${TUTORIAL}${cameras(10)}`);
  assert.equal(ten.camerasPerProcess, DEFAULT_CAMERAS_PER_PROCESS);
  assert.equal(DEFAULT_CAMERAS_PER_PROCESS, 8);
  assert.deepEqual(names(ten), [
    "rtsp group 1=cam0+cam1+cam2+cam3+cam4+cam5+cam6+cam7",
    "rtsp group 2=cam8+cam9+rtsp_node",
    "image-aggregator=image-aggregator",
    "video_dumper=video_dumper",
  ]);
  // 1: a process per camera, as before; a lone camera is a plain process named after its node.
  assert.deepEqual(names(load(`cameras_per_process: 1\n${TUTORIAL}${cameras(2)}`)).slice(0, 3), [
    "cam0=cam0",
    "cam1=cam1",
    "rtsp_node=rtsp_node",
  ]);
  assert.deepEqual(names(load(TUTORIAL))[0], "rtsp_node=rtsp_node");
  // Only nodes that run alike share a process: another environment, or restart: false, keeps its own.
  const mixed = load(`${TUTORIAL}cameras:
  - {name: a, url: rtsp://h/a}
  - {name: b, url: rtsp://h/b, env: {TZ: UTC}}
  - {name: c, url: rtsp://h/c, restart: false}
  - {name: d, url: rtsp://h/d, env: {TZ: UTC}}
`);
  assert.deepEqual(names(mixed).slice(0, 3), ["rtsp group 1=a+rtsp_node", "rtsp group 2=b+d", "c=c"]);

  // The process's command line: each node's flags, separated by --next, with the RTSP node's permissions.
  const [group] = planProcesses(ten.nodes, 8);
  const spec = nodeProcess(group, {}, ".");
  assert.equal(spec.name, "rtsp group 1");
  const script = spec.args.findIndex((a) => a.endsWith("nodes/rtsp.ts"));
  assert.ok(spec.args.slice(0, script).includes("--allow-run=ffmpeg"));
  const parts = splitGroup(spec.args.slice(script + 1));
  assert.deepEqual(parts, group.nodes.map((n) => n.argv));
  assert.ok(parts[0].includes("--sensor-name=cam0") && parts[0].includes("--name=cam0"));

  // Bad values, and two nodes on one metrics port (separate processes or not, one port cannot serve both).
  assert.match(
    errorOf(`cameras_per_process: 0\n${TUTORIAL}`),
    /^pipeline\.yaml: cameras_per_process: 0 is not a camera count: expected a whole number >= 1/,
  );
  assert.match(
    errorOf(`cameras_per_process: two\n${TUTORIAL}`),
    /cameras_per_process: "two" is not a camera count/,
  );
  assert.match(
    errorOf(
      `${TUTORIAL}cameras:\n  - {name: a, url: rtsp://h/a, flags: {metrics-port: 9300}}\n  - {name: b, url: rtsp://h/b, flags: {metrics-port: 9300}}\n`,
    ),
    /^pipeline\.yaml: cameras\[1\]\.flags\.metrics-port: --metrics-port 9300 is also given to cameras\[0\]: each node needs its own \(0: none\)/,
  );

  // up --check prints the process and the nodes in it.
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, `${TUTORIAL}${cameras(2)}`);
    const p = startProcess(DENO, ["run", "-A", "src/launcher/up.ts", "--check", file], {});
    assert.equal(await p.exit, 0, p.stderr.join("\n"));
    assert.ok(
      p.stdout.some((l) =>
        l.startsWith("  rtsp group 1 (cam0, cam1, rtsp_node): deno run ") && l.includes(" --next ")
      ),
      p.stdout.join("\n"),
    );
  } finally {
    await Deno.remove(file);
  }
});
