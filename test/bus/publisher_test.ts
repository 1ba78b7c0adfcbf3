// The PUBLISH connection (src/bus/publisher.ts) against a real redis-server: binary payloads byte for byte, AUTH,
// SELECT and the client name, fail-fast while Redis is down and recovery after a restart; the reply parser alone.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { Buffer } from "node:buffer";
import { Publisher, type PublisherEvent, ReplyParser } from "../../src/bus/publisher.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { startRedis } from "../helpers/redis_server.ts";
import { freePort } from "../helpers/net.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A subscriber of `topic` collecting every message's bytes in `got`. */
async function listen(
  conn: { port: number } | { path: string },
  topic: string,
): Promise<{ sub: Redis; got: Uint8Array[] }> {
  const sub = new Redis("port" in conn ? { host: "127.0.0.1", port: conn.port } : { path: conn.path });
  const got: Uint8Array[] = [];
  sub.on("messageBuffer", (_c: Buffer, m: Buffer) => got.push(new Uint8Array(m)));
  await sub.subscribe(topic);
  return { sub, got };
}

Deno.test("Publisher: binary payloads of 0 B to 8 MiB arrive byte for byte and in order; receivers counted when asked", async () => {
  const redis = await startRedis();
  // Subscribed before anything else: a SUBSCRIBE that ioredis queues while its ready check runs was lost now and
  // then (about 1 run in 10), and the later messages then reached nobody.
  const { sub, got } = await listen(redis, "frames");
  const pub = await Publisher.connect(redisSettingsFromUrl(redis.url), { name: "t", countReceivers: true });
  try {
    assert.equal(await pub.publish("nobody", new Uint8Array([1])), 0);
    const sizes = [0, 1, 2, 13, 65_536, 130_000, 300_000, 8 << 20];
    const sent = sizes.map((n, k) => new Uint8Array(n).map((_, i) => (i * 31 + k) % 256));
    // Sent without waiting, as a burst: the writes must not interleave.
    const receivers = await Promise.all(sent.map((b) => pub.publish("frames", b)));
    assert.deepEqual(receivers, sizes.map(() => 1));
    await until(() => got.length === sent.length, 10_000, "all messages");
    got.forEach((g, i) => assert.deepEqual(g, sent[i], `message ${i} (${sizes[i]} bytes)`));
    assert.equal(pub.ready, true);
  } finally {
    await pub.close();
    sub.disconnect();
    await redis.stop();
  }
});

Deno.test("Publisher: AUTH with user and password, SELECT and CLIENT SETNAME as configured; a wrong password is refused", async () => {
  const redis = await startRedis();
  const admin = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    await admin.call("ACL", "SETUSER", "cam", "on", ">s3cret", "~*", "&*", "+@all");
    const pub = await Publisher.connect(
      redisSettingsFromUrl(`redis://cam:s3cret@127.0.0.1:${redis.port}/3`),
      { name: "edge-cam:pub" },
    );
    try {
      assert.equal(await pub.publish("x", new Uint8Array([1, 2])), 0);
      const list = String(await admin.call("CLIENT", "LIST"));
      const line = list.split("\n").find((l) => / name=edge-cam:pub /.test(l));
      assert.ok(line, `named client in ${list}`);
      assert.match(line, / db=3 /);
      assert.match(line, / user=cam /);
    } finally {
      await pub.close();
    }
    await assert.rejects(
      Publisher.connect(redisSettingsFromUrl(`redis://cam:wrong@127.0.0.1:${redis.port}/0`)),
      /WRONGPASS|invalid username-password/,
    );
  } finally {
    admin.disconnect();
    await redis.stop();
  }
});

Deno.test("Publisher: -1 at once while Redis is down, one lost and one restored event, publishing again after a restart", async () => {
  const redis = await startRedis();
  const events: PublisherEvent[] = [];
  const pub = await Publisher.connect(redisSettingsFromUrl(redis.url), { onEvent: (e) => events.push(e) });
  try {
    assert.equal(await pub.publish("t", new Uint8Array([1])), 0);
    const restarting = redis.restart(1500);
    await until(() => !pub.ready, 5000, "the connection to drop");
    const t0 = performance.now();
    assert.equal(await pub.publish("t", new Uint8Array([1])), -1);
    // Queued, it would wait for the reconnection (Redis is down 1.5 s); 1 s leaves room for a loaded machine.
    assert.ok(performance.now() - t0 < 1000, "fails fast, no queueing");
    await restarting;
    await until(() => pub.ready, 5000, "the reconnection");
    assert.equal(await pub.publish("t", new Uint8Array([1])), 0);
    assert.deepEqual(events.map((e) => e.type), ["lost", "restored"]);
  } finally {
    await pub.close();
    await redis.stop();
  }
});

Deno.test("Publisher: with replies off (the default) Redis sends nothing back, messages still arrive whole and in order", async () => {
  const redis = await startRedis();
  const admin = new Redis({ host: "127.0.0.1", port: redis.port });
  const { sub, got } = await listen(redis, "frames");
  const pub = await Publisher.connect(redisSettingsFromUrl(redis.url), { name: "quiet" });
  try {
    const sent = Array.from({ length: 200 }, (_, k) => new Uint8Array(70_000 + k).fill(k % 256));
    assert.deepEqual(await Promise.all(sent.map((b) => pub.publish("frames", b))), sent.map(() => 0));
    await until(() => got.length === sent.length, 10_000, "all messages");
    got.forEach((g, i) => assert.deepEqual(g, sent[i], `message ${i}`));
    const line = String(await admin.call("CLIENT", "LIST")).split("\n").find((l) => / name=quiet /.test(l));
    assert.ok(line);
    assert.match(line, / cmd=publish /);
  } finally {
    await pub.close();
    sub.disconnect();
    admin.disconnect();
    await redis.stop();
  }
});

Deno.test("Publisher: frames published one after another (the request buffer reused) arrive intact", async () => {
  const redis = await startRedis();
  const { sub, got } = await listen(redis, "frames");
  const pub = await Publisher.connect(redisSettingsFromUrl(redis.url), { name: "seq" });
  try {
    // Sizes up and down, as JPEG frames vary, and pieces as the RTSP node sends them (head, JPEG, tail).
    const sizes = [60_000, 61_000, 20_000, 90_000, 65_000, 10, 200_000, 64_000];
    const sent = sizes.map((n, k) => new Uint8Array(n).map((_, i) => (i * 7 + k * 13) % 251));
    for (const [k, b] of sent.entries()) {
      const msg = k % 2 ? [b.subarray(0, 5), b.subarray(5, b.length - 3), b.subarray(b.length - 3)] : b;
      assert.equal(await pub.publish("frames", msg), 0);
    }
    await until(() => got.length === sent.length, 10_000, "all frames");
    got.forEach((g, i) => assert.deepEqual(g, sent[i], `frame ${i}`));
  } finally {
    await pub.close();
    sub.disconnect();
    await redis.stop();
  }
});

Deno.test("Publisher: connect() to a port nobody listens on rejects with the reason", async () => {
  const port = freePort();
  await assert.rejects(
    Publisher.connect(redisSettingsFromUrl(`redis://127.0.0.1:${port}/0`), { connectTimeoutMs: 2000 }),
    /refused/i,
  );
});

Deno.test("ReplyParser: integers, OK and errors across any chunking; anything else is refused", () => {
  const text = ":1\r\n+OK\r\n-WRONGPASS invalid username-password pair\r\n:0\r\n";
  const bytes = new TextEncoder().encode(text);
  for (const step of [1, 2, 3, 7, bytes.length]) {
    const p = new ReplyParser();
    const out = [];
    for (let i = 0; i < bytes.length; i += step) out.push(...p.push(bytes.subarray(i, i + step)));
    assert.deepEqual(out, [
      { ok: true, value: "1" },
      { ok: true, value: "OK" },
      { ok: false, error: "WRONGPASS invalid username-password pair" },
      { ok: true, value: "0" },
    ], `step ${step}`);
  }
  assert.throws(() => new ReplyParser().push(new TextEncoder().encode("*1\r\n:1\r\n")), /unexpected reply/);
});

Deno.test("ReplyParser: bulk strings (an XADD's id) and nil, whole only once their last byte arrived", () => {
  const text = "$15\r\n1769300000000-0\r\n$-1\r\n$0\r\n\r\n:3\r\n";
  const bytes = new TextEncoder().encode(text);
  for (const step of [1, 2, 5, bytes.length]) {
    const p = new ReplyParser();
    const out = [];
    for (let i = 0; i < bytes.length; i += step) out.push(...p.push(bytes.subarray(i, i + step)));
    assert.deepEqual(out, [
      { ok: true, value: "1769300000000-0" },
      { ok: true, value: null },
      { ok: true, value: "" },
      { ok: true, value: "3" },
    ], `step ${step}`);
  }
  const p = new ReplyParser();
  assert.deepEqual(p.push(new TextEncoder().encode("$5\r\nabc")), [], "nothing until the string is whole");
  assert.deepEqual(p.push(new TextEncoder().encode("de\r\n")), [{ ok: true, value: "abcde" }]);
});

for (const countReceivers of [false, true]) {
  Deno.test(`Publisher: command() sends XADD with a message in pieces and returns its id (replies ${countReceivers ? "on" : "off"})`, async () => {
    const redis = await startRedis();
    const admin = new Redis({ host: "127.0.0.1", port: redis.port });
    const { sub, got } = await listen(redis, "t");
    const pub = await Publisher.connect(redisSettingsFromUrl(redis.url), { name: "cmd", countReceivers });
    try {
      // A 3 MB message in 1 MiB pieces plus a small head and tail, as the aggregator sends a segment.
      const pieces = [
        new Uint8Array([1, 2, 3]),
        ...[0, 1, 2].map((k) => new Uint8Array(1 << 20).fill(10 + k)),
        new Uint8Array(5000).fill(99),
      ];
      const whole = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
      pieces.reduce((at, p) => (whole.set(p, at), at + p.byteLength), 0);
      // PUBLISHes around the command must not take its reply, nor it theirs.
      const before = pub.publish("t", new Uint8Array([7]));
      const id = await pub.command(["XADD", "s", "MAXLEN", "~", "10", "*", "d", pieces]);
      const after = pub.publish("t", pieces);
      assert.match(String(id), /^\d+-\d+$/);
      assert.equal(await before, countReceivers ? 1 : 0);
      assert.equal(await after, countReceivers ? 1 : 0);
      const entries = await admin.xrangeBuffer("s", "-", "+");
      assert.equal(entries.length, 1);
      assert.equal(entries[0][0].toString(), id);
      assert.deepEqual(new Uint8Array(entries[0][1][1]), whole);
      await until(() => got.length === 2, 5000, "both messages");
      assert.deepEqual(got[1], whole);
      // Redis' errors come back as rejections; the connection goes on.
      await assert.rejects(pub.command(["XADD", "s", "*", "d"]), /wrong number of arguments/i);
      assert.equal(await pub.command(["XLEN", "s"]), "1");
    } finally {
      await pub.close();
      sub.disconnect();
      admin.disconnect();
      await redis.stop();
    }
  });
}

Deno.test("Publisher: over a unix socket (MSIGHT_REDIS_MESSAGE_BROKER_UNIX_SOCKET_PATH)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/redis.sock`;
  const server = new Deno.Command("redis-server", {
    args: ["--port", "0", "--unixsocket", path, "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await until(() => Deno.stat(path).then(() => true, () => false), 10_000, "the socket");
    const { sub, got } = await listen({ path }, "frames");
    const settings = { host: "", port: 0, db: 0, path, display: path };
    const pub = await Publisher.connect(settings);
    try {
      assert.equal(
        await pub.publish("frames", new Uint8Array([7, 0, 255])),
        0,
        "sent (replies off: no count)",
      );
      await until(() => got.length === 1, 5000, "the message");
      assert.deepEqual(got[0], new Uint8Array([7, 0, 255]));
    } finally {
      await pub.close();
      sub.disconnect();
    }
  } finally {
    server.kill("SIGKILL");
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Publisher: an ACL user without a channel is refused at its first message on it, naming it (replies off)", async () => {
  const redis = await startRedis();
  const admin = new Redis({ host: "127.0.0.1", port: redis.port });
  await admin.call(
    "ACL",
    "SETUSER",
    "cam",
    "on",
    ">pw",
    "resetchannels",
    "-@all",
    "+client|setname",
    "+client|reply",
  );
  await admin.call("ACL", "SETUSER", "cam", "+publish", "&allowed");
  const { sub, got } = await listen(redis, "allowed");
  const pub = await Publisher.connect(
    redisSettingsFromUrl(`redis://cam:pw@127.0.0.1:${redis.port}/0`),
    { name: "acl" },
  );
  try {
    await assert.rejects(
      () => pub.publish("forbidden", new Uint8Array([1])),
      /^Error: Redis refused PUBLISH forbidden: NOPERM .*channels/,
    );
    // Allowed: the first message is checked, the ones queued behind it go out unanswered, all in order.
    const sent = Array.from({ length: 20 }, (_, k) => new Uint8Array([k]));
    assert.deepEqual(await Promise.all(sent.map((b) => pub.publish("allowed", b))), sent.map(() => 0));
    await until(() => got.length === sent.length, 10_000, "all messages");
    got.forEach((g, i) => assert.deepEqual(g, sent[i], `message ${i}`));
  } finally {
    await pub.close();
    sub.disconnect();
    admin.disconnect();
    await redis.stop();
  }
});
