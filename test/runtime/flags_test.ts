import assert from "node:assert/strict";
import { formatHelp, HelpRequested, parseFlags } from "../../src/runtime/flags.ts";
import { COMMON_FLAGS, PUBLISH_TOPIC, SENSOR_NAME } from "../../src/node/common_flags.ts";
import { configFromText } from "../../src/runtime/config.ts";
import { UsageError } from "../../src/runtime/errors.ts";
import { deviceName, redisSettingsFromEnv, redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { Logger, maskUrlCredentials } from "../../src/runtime/log.ts";

const SPECS = {
  ...COMMON_FLAGS,
  ...PUBLISH_TOPIC,
  ...SENSOR_NAME,
  url: { long: "url", short: "u", type: "string", required: true, help: "camera URL" },
  gpu: { long: "gpu", short: "g", type: "int", default: -1, min: -1, help: "GPU" },
  rtspTransport: {
    long: "rtsp-transport",
    type: "string",
    choices: ["tcp", "udp"] as const,
    default: "tcp",
    help: "t",
  },
  bufferSize: { long: "buffer-size", type: "int", default: 100, min: 1, help: "b" },
  overlapSize: { long: "overlap-size", type: "int", default: 0, min: 0, help: "o" },
  fps: { long: "fps", type: "number", default: 10, min: 0, minExclusive: true, help: "f" },
  dualstack: { long: "use-dualstack-endpoint", type: "bool", default: false, help: "d" },
} as const;

const split = (cmd: string) => cmd.trim().split(/\s+/).slice(1);
const usage = (fn: () => unknown, re: RegExp) =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes("\n"),
  );

Deno.test("flags: the RTSP tutorial command parses verbatim (-pt is one option, -g is the GPU)", () => {
  const v = parseFlags(
    SPECS,
    split(
      "msight_launch_rtsp -n rtsp_node -pt rtsp_topic --sensor-name rtsp_sensor -u rtsp://localhost:8554/live.stream -g 0 --rtsp-transport tcp",
    ),
    "rtsp",
  );
  assert.equal(v.name, "rtsp_node");
  assert.equal(v.publishTopic, "rtsp_topic");
  assert.equal(v.sensorName, "rtsp_sensor");
  assert.equal(v.url, "rtsp://localhost:8554/live.stream");
  assert.equal(v.gpu, 0);
  assert.equal(v.rtspTransport, "tcp");
  assert.equal(v.loggingLevel, "INFO");
  assert.equal(v.gap, 0);
});

Deno.test("flags: negative numbers, --flag=value, long prefixes, short -sn, bools", () => {
  const v = parseFlags(
    SPECS,
    [
      "-n=x",
      "-pt",
      "t",
      "-sn",
      "s",
      "-u",
      "rtsp://h/p",
      "-g",
      "-1",
      "--buffer=50",
      "--overlap",
      "5",
      "--use-dual",
    ],
    "rtsp",
  );
  assert.equal(v.gpu, -1);
  assert.equal(v.bufferSize, 50);
  assert.equal(v.overlapSize, 5);
  assert.equal(v.dualstack, true);
  assert.equal(v.name, "x"); // `-n=x` is accepted, as argparse does
});

Deno.test("flags: bad and unknown flags are one line naming the flag and what is right", () => {
  const base = ["-n", "x", "-pt", "t", "-sn", "s", "-u", "rtsp://h/p"];
  usage(
    () => parseFlags(SPECS, [...base, "--fsp", "10"], "agg"),
    /unrecognized argument --fsp \(did you mean --fps\?\)/,
  );
  usage(() => parseFlags(SPECS, [...base, "--fps", "0"], "agg"), /--fps 0 is invalid: expected a number > 0/);
  usage(() => parseFlags(SPECS, [...base, "--fps", "ten"], "agg"), /--fps ten is invalid: expected a number/);
  usage(
    () => parseFlags(SPECS, [...base, "--rtsp-transport", "tpc"], "agg"),
    /one of tcp, udp \(did you mean tcp\?\)/,
  );
  usage(() => parseFlags(SPECS, ["-pt", "t"], "agg"), /required: -n\/--name/);
  usage(() => parseFlags(SPECS, [...base, "--fps"], "agg"), /--fps expects a value/);
  usage(() => parseFlags(SPECS, [...base, "--heartbeat", "1"], "agg"), /ambiguous option --heartbeat/);
  usage(() => parseFlags(SPECS, [...base, "stray"], "agg"), /unexpected argument "stray"/);
});

Deno.test("flags: --help lists every flag with its default", () => {
  assert.throws(() => parseFlags(SPECS, ["--help"], "rtsp"), HelpRequested);
  const help = formatHelp(SPECS, "rtsp", "RTSP source");
  for (const spec of Object.values(SPECS)) assert.ok(help.includes(`--${spec.long}`), spec.long);
  assert.match(help, /--buffer-size INT\s+b \(default: 100\)/);
  assert.match(help, /-pt, --publish-topic STRING/);
});

Deno.test("config: YAML values fill flags, the command line wins, bad keys and types name their path", () => {
  const text =
    "publish-topic: from_yaml\nfps: 25\nbuffer_size: 20\nrtsp-transport: udp\nuse-dualstack-endpoint: true\n";
  const preset = configFromText(text, "node.yaml", SPECS);
  const v = parseFlags(SPECS, ["-n", "x", "-sn", "s", "-u", "rtsp://h/p", "--fps", "5"], "agg", preset);
  assert.equal(v.publishTopic, "from_yaml");
  assert.equal(v.fps, 5);
  assert.equal(v.bufferSize, 20);
  assert.equal(v.rtspTransport, "udp");
  assert.equal(v.dualstack, true);
  usage(
    () => configFromText("fsp: 3\n", "node.yaml", SPECS),
    /^node.yaml: unknown key fsp \(did you mean fps\?\)/,
  );
  usage(
    () => configFromText("fps: fast\n", "node.yaml", SPECS),
    /^node.yaml: fps: --fps fast is invalid: expected a number/,
  );
  usage(
    () => configFromText("fps: [1, 2]\n", "node.yaml", SPECS),
    /^node.yaml: fps must be a single value, got a list/,
  );
  usage(() => configFromText("- a\n- b\n", "node.yaml", SPECS), /^node.yaml: expected a mapping/);
  usage(() => configFromText("a: [\n", "node.yaml", SPECS), /^node.yaml: not valid YAML/);
});

Deno.test("env: MSIGHT_REDIS_MESSAGE_BROKER_* and REDIS_URL", () => {
  const envOf = (e: Record<string, string>) => (k: string) => e[k];
  const a = redisSettingsFromEnv(envOf({
    MSIGHT_REDIS_MESSAGE_BROKER_HOST: "10.0.0.5",
    MSIGHT_REDIS_MESSAGE_BROKER_PORT: "6380",
    MSIGHT_REDIS_MESSAGE_BROKER_DB: "3",
    MSIGHT_REDIS_MESSAGE_BROKER_USERNAME: "u",
    MSIGHT_REDIS_MESSAGE_BROKER_PASSWORD: "p4ss",
    MSIGHT_REDIS_MESSAGE_BROKER_USE_TLS: "true",
    MSIGHT_REDIS_MESSAGE_BROKER_TLS_CA_CERT_FILE: "/ca.pem",
  }));
  assert.deepEqual([a.host, a.port, a.db, a.username, a.password, a.tls?.caFile], [
    "10.0.0.5",
    6380,
    3,
    "u",
    "p4ss",
    "/ca.pem",
  ]);
  assert.ok(!a.display.includes("p4ss"));
  const s = redisSettingsFromEnv(envOf({ MSIGHT_REDIS_MESSAGE_BROKER_UNIX_SOCKET_PATH: "/run/redis.sock" }));
  assert.equal(s.path, "/run/redis.sock");
  const d = redisSettingsFromEnv(envOf({}));
  assert.deepEqual([d.host, d.port, d.db], ["localhost", 6379, 0]);
  const u = redisSettingsFromUrl("redis://:s3cret@127.0.0.1:6390/2");
  assert.deepEqual([u.host, u.port, u.db, u.password], ["127.0.0.1", 6390, 2, "s3cret"]);
  usage(
    () => redisSettingsFromEnv(envOf({ MSIGHT_REDIS_MESSAGE_BROKER_PORT: "abc" })),
    /PORT="abc" is invalid/,
  );
  usage(() => redisSettingsFromUrl("http://x"), /expected a redis:\/\/ or rediss:\/\/ URL/);
  const warnings: string[] = [];
  assert.equal(deviceName(envOf({ MSIGHT_EDGE_DEVICE_NAME: "pole-7" }), (m) => warnings.push(m)), "pole-7");
  assert.equal(warnings.length, 0);
  deviceName(envOf({}), (m) => warnings.push(m));
  assert.match(warnings[0], /MSIGHT_EDGE_DEVICE_NAME is not set/);
});

Deno.test("log: MSight's line format, JSON lines, and secrets masked", () => {
  const lines: string[] = [];
  const log = new Logger({ device: "dev", node: "n1", sink: (l) => lines.push(l) });
  log.addSecret("hunter2");
  log.info("connecting to rtsp://admin:hunter2@cam/live with password hunter2");
  log.debug("hidden");
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - dev - n1 - INFO :: connecting to rtsp:\/\/\*\*\*:\*\*\*@cam\/live with password \*\*\*$/,
  );
  const json: string[] = [];
  new Logger({ device: "dev", node: "n1", format: "json", sink: (l) => json.push(l) }).warn("x", { id: 1n });
  const o = JSON.parse(json[0]);
  assert.deepEqual([o.level, o.device, o.node, o.msg, o.id], ["WARNING", "dev", "n1", "x", "1"]);
  assert.equal(maskUrlCredentials("rtsps://u:p@h:322/x"), "rtsps://***:***@h:322/x");
  assert.equal(maskUrlCredentials("redis://:secret@h:6379"), "redis://***:***@h:6379"); // password only
});

Deno.test("flags: a repeatable flag keeps every value, in order, joined with commas; others keep the last", () => {
  const specs = {
    dir: { long: "save-dir", short: "sd", type: "string", repeatable: true, help: "dirs" },
    name: { long: "name", type: "string", help: "name" },
  } as const;
  const v = parseFlags(
    specs,
    ["--save-dir", "a", "-sd", "b", "--save-dir=c,d", "--name", "x", "--name", "y"],
    "t",
  );
  assert.equal(v.dir, "a,b,c,d");
  assert.equal(v.name, "y");
  assert.equal(parseFlags(specs, ["--save-dir", "only"], "t").dir, "only");
});
