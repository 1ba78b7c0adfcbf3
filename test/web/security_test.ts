/**
 * The console's security, against the real node process: only files under --save-dir are served (traversal,
 * encoded traversal, absolute paths and symlinks out are 404), Range errors are 416 and never 500, it is read-only
 * (405), long URLs and request bodies are refused, and off loopback it needs a token (refuses to start without).
 */
import assert from "node:assert/strict";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { type NodeProcess, startNode } from "../helpers/process.ts";
import { freePort } from "../helpers/net.ts";
import { smallMp4 } from "../helpers/segments.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";

const STEM = "cam_20260124_162845_649586";

/** Sends one raw HTTP/1.1 request (no URL normalisation by a client) and returns the status and body. */
async function raw(port: number, head: string, body = ""): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(`${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n${body}`),
    );
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
  } finally {
    conn.close();
  }
}

function startWeb(redis: TestRedis, args: string[]): { node: NodeProcess; port: number } {
  const port = freePort();
  const node = startNode("nodes/web.ts", ["-n", "console", "--port", `${port}`, ...args], redis.env, [
    "--no-prompt",
    ...permissionFlags("web"),
  ]);
  return { node, port };
}

Deno.test("web security: only files under --save-dir, Range errors 416, read-only, long URLs and bodies refused", async () => {
  const redis = await startRedis();
  const root = await Deno.makeTempDir({ prefix: "msight-web-sec-" });
  const save = `${root}/save`;
  await Deno.mkdir(save);
  const mp4 = await smallMp4();
  await Deno.writeFile(`${save}/${STEM}.mp4`, mp4);
  await Deno.writeTextFile(`${save}/${STEM}.json`, JSON.stringify({ sensor_name: "cam", codec: "h264" }));
  await Deno.writeTextFile(`${root}/secret.json`, '{"secret": true}');
  await Deno.symlink(`${root}/secret.json`, `${save}/escape.json`);
  await Deno.symlink(root, `${save}/up`);
  const { node, port } = startWeb(redis, ["--save-dir", save]);
  const base = `http://127.0.0.1:${port}`;
  try {
    await node.waitForLine(/console on http:/, 20_000);
    const statuses: number[] = [];
    const get = async (path: string, init?: RequestInit) => {
      const r = await fetch(base + path, init);
      const body = new Uint8Array(await r.arrayBuffer());
      statuses.push(r.status);
      return { r, body };
    };
    const ok = await get(`/files/0/${STEM}.mp4`);
    assert.equal(ok.r.status, 200);
    assert.equal(ok.r.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(ok.body, mp4);

    const part = await get(`/files/0/${STEM}.mp4`, { headers: { range: "bytes=10-109" } });
    assert.equal(part.r.status, 206);
    assert.equal(part.r.headers.get("content-range"), `bytes 10-109/${mp4.length}`);
    assert.deepEqual(part.body, mp4.subarray(10, 110));
    const tail = await get(`/files/0/${STEM}.mp4`, { headers: { range: "bytes=-16" } });
    assert.deepEqual(tail.body, mp4.subarray(mp4.length - 16));
    const past = await get(`/files/0/${STEM}.mp4`, { headers: { range: `bytes=${mp4.length}-` } });
    assert.equal(past.r.status, 416);
    assert.equal(past.r.headers.get("content-range"), `bytes */${mp4.length}`);
    for (const junk of ["bytes=abc", "bytes=5-1", "lines=1-2", "bytes=99999999999999999999999-"]) {
      const r = await get(`/files/0/${STEM}.mp4`, { headers: { range: junk } });
      assert.ok([200, 416].includes(r.r.status), `${junk}: ${r.r.status}`);
    }
    const dl = await get(`/files/0/${STEM}.mp4?download`);
    assert.match(dl.r.headers.get("content-disposition") ?? "", /attachment; filename="cam_.*\.mp4"/);

    // Out of the directory: every spelling is a plain 404, the secret never appears.
    const attempts = [
      "/files/0/../secret.json",
      "/files/0/..%2fsecret.json",
      "/files/0/%2e%2e%2fsecret.json",
      "/files/0/%2e%2e/secret.json",
      "/files/0/%2fetc%2fpasswd.json",
      "/files/0//etc/hostname.json",
      "/files/0/escape.json",
      "/files/0/up/secret.json",
      "/files/1/" + STEM + ".mp4",
      "/files/0/%ZZ.json",
      "/files/0/" + STEM + ".mp4%00.json",
      "/files/0/..\\secret.json",
    ];
    for (const path of attempts) {
      const r = await raw(port, `GET ${path} HTTP/1.1`);
      statuses.push(r.status);
      assert.ok([400, 404].includes(r.status), `${path}: ${r.status}`);
      assert.ok(!r.text.includes(`"secret": true`), `${path} leaked the file`);
    }
    // Read-only, and bounded requests.
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const r = await get("/api/nodes", { method });
      assert.equal(r.r.status, 405, method);
      assert.equal(r.r.headers.get("allow"), "GET, HEAD");
    }
    assert.equal((await get("/x".repeat(2000))).r.status, 414);
    const withBody = await raw(port, "GET /api/nodes HTTP/1.1\r\nContent-Length: 5", "hello");
    statuses.push(withBody.status);
    assert.equal(withBody.status, 413);
    assert.equal((await get("/api/timeline?window=-1")).r.status, 400);
    assert.equal((await get("/nope")).r.status, 404);
    assert.equal((await get("/api/preview?topic=x&sensor=y")).r.status, 404);
    const page = await get("/");
    assert.match(page.r.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const list = JSON.parse(new TextDecoder().decode((await get("/api/recordings")).body));
    assert.deepEqual(list.segments.map((s: { id: string }) => s.id), [`0/${STEM}`]);

    assert.ok(!statuses.includes(500), `a 500 among ${statuses.join(",")}`);
    assert.ok(!node.stderr.some((l) => /^\s+at /.test(l) || / ERROR :: /.test(l)), node.stderr.join("\n"));

    // Redis away: the Nodes view is a 503 that says why, warned once however often the page asks.
    await redis.stop();
    for (let i = 0; i < 3; i++) {
      const r = await get("/api/nodes");
      assert.equal(r.r.status, 503);
      assert.match(new TextDecoder().decode(r.body), /^cannot read MSIGHT:NODES: /);
    }
    assert.equal(node.stderr.filter((l) => /WARNING :: cannot read MSIGHT:NODES/.test(l)).length, 1);
    assert.ok(!node.stderr.some((l) => /^\s+at /.test(l) || / ERROR :: /.test(l)), node.stderr.join("\n"));
  } finally {
    await node.stop();
    await redis.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("web security: off loopback it will not start without a token, and then every request needs it; a file as --save-dir is refused", async () => {
  const redis = await startRedis();
  const bare = startWeb(redis, ["--host", "0.0.0.0"]);
  try {
    assert.equal(await bare.node.exit, 2);
    assert.equal(bare.node.stderr.length, 1, bare.node.stderr.join("\n"));
    assert.match(bare.node.stderr[0], /^web: error: --host 0\.0\.0\.0 is not loopback: give --auth-token/);
  } finally {
    await bare.node.stop();
  }
  // A file given as --save-dir: one line and exit 2, as for any bad flag.
  const file = await Deno.makeTempFile({ prefix: "msight-web-not-a-dir-" });
  const notDir = startWeb(redis, ["--save-dir", file]);
  try {
    assert.equal(await notDir.node.exit, 2);
    const errors = notDir.node.stderr.filter((l) => !/ - (INFO|WARNING) :: /.test(l));
    assert.deepEqual(errors, [
      `web: error: --save-dir ${file} is not a directory: give a dumper's --save-dir`,
    ]);
  } finally {
    await notDir.node.stop();
    await Deno.remove(file);
  }
  const token = "s3cret-token-42";
  const { node, port } = startWeb(redis, ["--host", "0.0.0.0", "--auth-token", token]);
  const base = `http://127.0.0.1:${port}`;
  try {
    await node.waitForLine(/console on http:\/\/0\.0\.0\.0:\d+\/ \(token required\)/, 20_000);
    const status = async (path: string, headers: Record<string, string> = {}) => {
      const r = await fetch(base + path, { headers, redirect: "manual" });
      await r.body?.cancel();
      return r;
    };
    assert.equal((await status("/api/nodes")).status, 401);
    assert.equal((await status("/")).status, 401);
    assert.equal((await status("/api/nodes", { authorization: "Bearer wrong-token-00" })).status, 401);
    assert.equal((await status("/api/nodes", { authorization: `Bearer ${token}` })).status, 200);
    const login = await status(`/?token=${token}`);
    assert.equal(login.status, 303);
    const cookie = login.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^msight_token=.*; HttpOnly; SameSite=Strict/);
    assert.equal((await status("/api/nodes", { cookie: cookie.split(";")[0] })).status, 200);
    // A cookie that is not percent-encoding is no token (401), not a server error.
    assert.equal((await status("/api/nodes", { cookie: "msight_token=%ZZ" })).status, 401);
    assert.ok(!node.stderr.some((l) => l.includes(token)), "the token was logged");
  } finally {
    await node.stop();
    await redis.stop();
  }
});
