/**
 * Redis security for real: a `redis-server` listening only on TLS (`--tls-port`, client certificates required),
 * certificates made by openssl for the test, and one ACL user per node kind created with the README's own
 * `ACL SETUSER` lines. The whole pipeline (a real RTSP camera → rtsp → aggregator → dumper + pusher, and status)
 * runs over it; a wrong CA, a missing client certificate and a user missing a permission each get one line.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../helpers/rtsp_server.ts";
import { type NodeProcess, ROOT, startNode, stopsCleanly } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";

const PASSWORD = "s3cret-for-tests";

/** The README's `ACL SETUSER` lines, by user name. */
async function readmeAcl(): Promise<Map<string, string>> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const lines = readme.split("\n").filter((l) => l.startsWith("ACL SETUSER "));
  assert.ok(lines.length >= 5, "the README gives an ACL SETUSER line per node kind");
  return new Map(lines.map((l) => [l.split(" ")[2], l]));
}

/** An admin connection over TLS with the test's client certificate (the default user). */
function admin(redis: TestRedis): Redis {
  const c = redis.certs!;
  return new Redis({
    host: "127.0.0.1",
    port: redis.port,
    tls: {
      ca: Deno.readTextFileSync(c.caFile),
      cert: Deno.readTextFileSync(c.certFile),
      key: Deno.readTextFileSync(c.keyFile),
    },
    lazyConnect: true,
  });
}

/** Runs `ACL SETUSER` from a README line, as `name`, optionally without some of its rules. */
async function setUser(r: Redis, line: string, name: string, without: string[] = []): Promise<void> {
  const rules = line.split(" ").slice(3).filter((x) => !without.includes(x)).map((x) =>
    x === ">CHANGE_ME" ? `>${PASSWORD}` : x
  );
  assert.equal(rules.length, line.split(" ").length - 3 - without.length, `all of ${without} in the line`);
  await r.call("ACL", "SETUSER", name, ...rules);
}

function asUser(redis: TestRedis, user: string): Record<string, string> {
  return {
    ...redis.env,
    MSIGHT_REDIS_MESSAGE_BROKER_USERNAME: user,
    MSIGHT_REDIS_MESSAGE_BROKER_PASSWORD: PASSWORD,
  };
}

async function files(dir: string, ext: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(ext)) out.push(e.name);
  } catch {
    // Not created yet.
  }
  return out;
}

/** The one CRITICAL/error line of a node that could not run, and its exit code. */
async function oneLine(p: NodeProcess): Promise<{ code: number; line: string }> {
  const code = await p.exit;
  const lines = [...p.stdout, ...p.stderr].filter((l) => /CRITICAL|error:/.test(l));
  assert.equal(lines.length, 1, [...p.stdout, ...p.stderr].join("\n"));
  assert.ok(![...p.stdout, ...p.stderr].some((l) => /^\s+at /.test(l)), "no stack trace");
  return { code, line: lines[0] };
}

/** What a test body gets from {@linkcode withTlsRedisAndCamera}. */
interface Rig {
  redis: TestRedis;
  /** The admin connection, connected. */
  r: Redis;
  cam: RtspServer;
  /** A temporary folder. */
  dir: string;
  /** The README's `ACL SETUSER` lines, by user name. */
  acl: Map<string, string>;
  /** Starts `nodes/<script>.ts` with `args` as Redis user `user` (its password set), `env` added. */
  start(script: string, user: string, args: string[], env?: Record<string, string>): NodeProcess;
}

/**
 * A Redis on TLS only, its admin connection, the real camera's frames on RTSP (at a path unique to the test) and a
 * temporary folder; every node started is stopped, and all of it removed, after `body`.
 */
async function withTlsRedisAndCamera(name: string, body: (rig: Rig) => Promise<void>): Promise<void> {
  const redis = await startRedis({ tls: true });
  const r = admin(redis);
  const cam = await startRtspServer({ source: "mcity", path: `/${name}-${crypto.randomUUID().slice(0, 8)}` });
  const dir = await Deno.makeTempDir({ prefix: `msight-${name}-` });
  const nodes: NodeProcess[] = [];
  const start = (script: string, user: string, args: string[], env: Record<string, string> = {}) => {
    const p = startNode(`nodes/${script}.ts`, args, { ...asUser(redis, user), ...env });
    nodes.push(p);
    return p;
  };
  try {
    await r.connect();
    const acl = await readmeAcl();
    await body({ redis, r, cam, dir, acl, start });
  } finally {
    for (const n of nodes) await n.stop();
    r.disconnect();
    await cam.stop();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The RTSP node `name`, publishing the camera as sensor `cam` on `rtsp_topic`. */
function rtspArgs(name: string, camUrl: string, ...more: string[]): string[] {
  return ["-n", name, "-pt", "rtsp_topic", "-sn", "cam", "-u", camUrl, ...more];
}

/** The aggregator `name`: `rtsp_topic` at 10 fps into segments of `frames` frames on `aggregated_video`. */
function aggregatorArgs(name: string, frames: number): string[] {
  return `-n ${name} -st rtsp_topic -pt aggregated_video --fps 10 --buffer-size ${frames} --overlap-size 0`
    .split(" ");
}

const S3_ENV = { AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", AWS_EC2_METADATA_DISABLED: "true" };

Deno.test({
  name: "Redis TLS + ACL: the pipeline runs over TLS, each node as its README ACL user; status lists them",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withTlsRedisAndCamera("tls", async ({ redis, r, cam, dir, acl, start }) => {
      for (const user of ["rtsp", "aggregator", "dumper", "pusher", "status"]) {
        assert.ok(acl.has(user), `README: ACL SETUSER ${user}`);
        await setUser(r, acl.get(user)!, user);
      }
      const deadS3 = freePort();
      const dumper = start("dumper", "dumper", [
        "-n",
        "video_dumper",
        "-st",
        "aggregated_video",
        "--save-dir",
        `${dir}/v`,
      ]);
      const pusher = start("pusher", "pusher", [
        "-n",
        "video_pusher",
        "-st",
        "aggregated_video",
        "--bucket-name",
        "b",
        "--endpoint-url",
        `http://127.0.0.1:${deadS3}`,
        "--spool-dir",
        `${dir}/spool`,
      ], S3_ENV);
      const agg = start("aggregator", "aggregator", aggregatorArgs("image-aggregator", 10));
      await agg.waitForLine(/aggregating rtsp_topic/, 30_000);
      const rtsp = start("rtsp", "rtsp", rtspArgs("rtsp_node", cam.url, "--frame-log-every", "0"));
      await waitFor(async () => (await files(`${dir}/v`, ".mp4")).length >= 2, 60_000, "segments saved");
      await pusher.waitForLine(/queued .* for upload/, 30_000);
      for (const n of [dumper, pusher, agg, rtsp]) {
        const all = [...n.stdout, ...n.stderr];
        assert.ok(all.some((l) => /rediss:\/\/127\.0\.0\.1/.test(l)), "connected over TLS");
        assert.ok(!all.some((l) => /NOPERM|CRITICAL|ERROR/.test(l)), all.slice(-10).join("\n"));
      }
      const status = startNode("nodes/status.ts", [], asUser(redis, "status"));
      assert.equal(await status.exit, 0, status.stderr.join("\n"));
      for (const name of ["rtsp_node", "image-aggregator", "video_dumper", "video_pusher"]) {
        assert.ok(status.stdout.some((l) => l.startsWith(name)), `status lists ${name}`);
      }
      // Each connection is its node's user, on TLS.
      const clients = String(await r.call("CLIENT", "LIST"));
      for (const user of ["rtsp", "aggregator", "dumper", "pusher"]) {
        assert.match(clients, new RegExp(`user=${user} `), `a connection as ${user}`);
      }
      for (const n of [rtsp, agg, dumper, pusher]) await stopsCleanly(n);
    });
  },
});

Deno.test({
  name: "Redis TLS: a wrong CA and a missing client certificate are refused with one line each",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const redis = await startRedis({ tls: true });
    try {
      const certs = redis.certs!;
      const wrongCa = startNode("nodes/echo.ts", ["-st", "x"], {
        ...redis.env,
        MSIGHT_REDIS_MESSAGE_BROKER_TLS_CA_CERT_FILE: certs.otherCaFile,
      });
      const a = await oneLine(wrongCa);
      assert.equal(a.code, 1);
      assert.match(
        a.line,
        /TLS refused the server's certificate \(invalid peer certificate: UnknownIssuer\)/,
      );
      assert.ok(a.line.includes(`MSIGHT_REDIS_MESSAGE_BROKER_TLS_CA_CERT_FILE=${certs.otherCaFile}`), a.line);

      const noCert = startNode("nodes/echo.ts", ["-st", "x"], {
        ...redis.env,
        MSIGHT_REDIS_MESSAGE_BROKER_TLS_CERT_FILE: "",
        MSIGHT_REDIS_MESSAGE_BROKER_TLS_KEY_FILE: "",
      });
      const b = await oneLine(noCert);
      assert.equal(b.code, 1);
      assert.match(b.line, /the server refused our TLS client certificate .*TLS_CERT_FILE/);

      const missing = startNode("nodes/echo.ts", ["-st", "x"], {
        ...redis.env,
        MSIGHT_REDIS_MESSAGE_BROKER_TLS_CA_CERT_FILE: "/nonexistent/ca.crt",
      });
      const c = await oneLine(missing);
      assert.equal(c.code, 2);
      assert.match(
        c.line,
        /MSIGHT_REDIS_MESSAGE_BROKER_TLS_CA_CERT_FILE=\/nonexistent\/ca\.crt: cannot read it/,
      );
    } finally {
      await redis.stop();
    }
  },
});

Deno.test({
  name: "Redis ACL: a node whose user lacks one permission stops with one line naming what Redis refused",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withTlsRedisAndCamera("acl", async ({ r, cam, dir, acl, start }) => {
      await setUser(r, acl.get("rtsp")!, "rtsp_nopub", ["&rtsp_topic"]);
      await setUser(r, acl.get("aggregator")!, "agg_nopub", ["&aggregated_video"]);
      await setUser(r, acl.get("dumper")!, "dumper_noread", ["+xreadgroup"]);
      await setUser(r, acl.get("rtsp")!, "rtsp");

      // The camera side without its channel: refused at the first frame.
      const rtspBad = start("rtsp", "rtsp_nopub", rtspArgs("r1", cam.url));
      const a = await oneLine(rtspBad);
      assert.equal(a.code, 1);
      assert.match(
        a.line,
        /CRITICAL :: Redis refused PUBLISH rtsp_topic: NOPERM .*channels.*Redis user rtsp_nopub/,
      );

      // The aggregator without its output channel: refused at its first segment.
      start("rtsp", "rtsp", rtspArgs("r2", cam.url, "--frame-log-every", "0"));
      const agg = start("aggregator", "agg_nopub", aggregatorArgs("agg", 5));
      const b = await oneLine(agg);
      assert.equal(b.code, 1);
      assert.match(
        b.line,
        /CRITICAL :: Redis refused PUBLISH aggregated_video: NOPERM .*Redis user agg_nopub/,
      );

      // A sink without XREADGROUP on the durable stream: refused when it starts reading.
      const dumper = start(
        "dumper",
        "dumper_noread",
        ["-n", "d", "-st", "aggregated_video", "--save-dir", dir, "--transport", "stream"],
      );
      const c = await oneLine(dumper);
      assert.equal(c.code, 1);
      assert.match(c.line, /CRITICAL :: Redis refused XREADGROUP .*'xreadgroup'.*Redis user dumper_noread/);
    });
  },
});
