import assert from "node:assert/strict";
import { maskUrl, parsePythonList, selectBus } from "../../src/bus/select.ts";
import { UsageError } from "../../src/runtime/errors.ts";

const envOf = (vars: Record<string, string>) => (k: string) => vars[k];

/** Asserts a UsageError whose one line matches `re`. */
function refuses(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("select: nothing set is standalone Redis on localhost:6379, as MSight", () => {
  const s = selectBus({ env: envOf({}) });
  assert.equal(s.backend, "redis");
  if (s.backend !== "redis") return;
  assert.equal(s.redis.host, "localhost");
  assert.equal(s.redis.port, 6379);
});

Deno.test("select: MSIGHT_PUBSUB_BACKEND=nats reads MSight's NATS variables", () => {
  const s = selectBus({
    env: envOf({
      MSIGHT_PUBSUB_BACKEND: "NATS",
      MSIGHT_NATS_SERVERS: `['nats://10.0.0.1:4222', "nats://10.0.0.2:4222",]`,
      MSIGHT_NATS_USERNAME: "u",
      MSIGHT_NATS_PASSWORD: "p",
      MSIGHT_NATS_TOKEN: "t",
      MSIGHT_NATS_NKEY_SEED: "SUA",
      MSIGHT_NATS_USER_JWT: "jwt",
      MSIGHT_NATS_USER_CREDENTIALS: "/c.creds",
      MSIGHT_NATS_USE_TLS: "yes",
      MSIGHT_NATS_TLS_CA_CERT_FILE: "/ca",
      MSIGHT_NATS_TLS_CERT_FILE: "/cert",
      MSIGHT_NATS_TLS_KEY_FILE: "/key",
    }),
  });
  assert.equal(s.backend, "nats");
  if (s.backend !== "nats") return;
  assert.deepEqual(s.nats.servers, ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]);
  assert.equal(s.nats.user, "u");
  assert.equal(s.nats.pass, "p");
  assert.equal(s.nats.token, "t");
  assert.equal(s.nats.nkeySeed, "SUA");
  assert.equal(s.nats.userJwt, "jwt");
  assert.equal(s.nats.credsFile, "/c.creds");
  assert.deepEqual(s.nats.tls, { caFile: "/ca", certFile: "/cert", keyFile: "/key" });
  // No Redis configured: the registry lives in JetStream.
  assert.equal(s.registry, "nats");
});

Deno.test("select: with NATS and Redis configured, the registry stays in Redis (as MSight keeps it)", () => {
  const extras: Record<string, string>[] = [
    { REDIS_URL: "redis://127.0.0.1:6390/0" },
    { MSIGHT_REDIS_MESSAGE_BROKER_PORT: "6390" },
  ];
  for (const extra of extras) {
    const s = selectBus({ env: envOf({ MSIGHT_PUBSUB_BACKEND: "nats", ...extra }) });
    assert.ok(
      s.backend === "nats" && s.registry !== "nats" && s.registry.redis.port === 6390,
      JSON.stringify(s),
    );
  }
  const s = selectBus({ busUrl: "nats://h:4222", redisUrl: "redis://r:6391/0", env: envOf({}) });
  assert.ok(s.backend === "nats" && s.registry !== "nats" && s.registry.redis.host === "r");
});

Deno.test("select: bus URLs of every scheme; the flag wins over MSIGHT_BUS_URL", () => {
  const n = selectBus({
    busUrl: "nats://alice:s3cret@h1:4222,h2",
    env: envOf({ MSIGHT_BUS_URL: "redis://x:1/0" }),
  });
  assert.ok(n.backend === "nats");
  if (n.backend !== "nats") return;
  assert.deepEqual(n.nats.servers, ["nats://h1:4222", "nats://h2:4222"]);
  assert.equal(n.nats.user, "alice");
  assert.equal(n.nats.pass, "s3cret");
  assert.ok(!n.nats.display.includes("s3cret"));
  const tok = selectBus({ env: envOf({ MSIGHT_BUS_URL: "nats://tok123@h1" }) });
  assert.ok(tok.backend === "nats" && tok.nats.token === "tok123" && tok.nats.user === undefined);

  const c = selectBus({ env: envOf({ MSIGHT_BUS_URL: "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001" }) });
  assert.ok(c.backend === "redis-cluster");
  if (c.backend !== "redis-cluster") return;
  assert.deepEqual(c.cluster.nodes, [{ host: "10.0.0.1", port: 7000 }, { host: "10.0.0.2", port: 7001 }]);
  assert.equal(c.cluster.password, "pw");
  assert.equal(c.cluster.tls, undefined);
  assert.ok(!c.cluster.display.includes("pw"));
  const ct = selectBus({ busUrl: "rediss+cluster://h1:7000", env: envOf({}) });
  assert.ok(ct.backend === "redis-cluster" && ct.cluster.tls !== undefined);

  const r = selectBus({ busUrl: "rediss://u:p@h:6380/2", env: envOf({}) });
  assert.ok(r.backend === "redis" && r.redis.port === 6380 && r.redis.db === 2 && r.redis.tls !== undefined);
});

Deno.test("select: MSight's cluster variables, node list as a Python list literal, HOST:PORT without one", () => {
  const s = selectBus({
    env: envOf({
      MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "true",
      MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES: "['127.0.0.1:7000', '127.0.0.1:7001']",
      MSIGHT_REDIS_MESSAGE_BROKER_PASSWORD: "pw",
    }),
  });
  assert.ok(s.backend === "redis-cluster");
  if (s.backend !== "redis-cluster") return;
  assert.deepEqual(s.cluster.nodes.map((n) => n.port), [7000, 7001]);
  assert.equal(s.cluster.password, "pw");
  const one = selectBus({
    env: envOf({
      MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "1",
      MSIGHT_REDIS_MESSAGE_BROKER_HOST: "h",
      MSIGHT_REDIS_MESSAGE_BROKER_PORT: "7005",
    }),
  });
  assert.ok(
    one.backend === "redis-cluster" && one.cluster.nodes[0].host === "h" &&
      one.cluster.nodes[0].port === 7005,
  );
});

Deno.test("select: Kafka is refused in one line naming the supported back ends (exit 2)", () => {
  refuses(
    () => selectBus({ env: envOf({ MSIGHT_PUBSUB_BACKEND: "kafka" }) }),
    /Kafka .*not supported yet.*redis.*nats/,
  );
  refuses(() => selectBus({ busUrl: "kafka://b:9092", env: envOf({}) }), /not supported yet/);
  assert.equal(new UsageError("x").exitCode, 2);
});

Deno.test("select: bad values get one line naming the value and the right form", () => {
  refuses(
    () => selectBus({ env: envOf({ MSIGHT_PUBSUB_BACKEND: "zeromq" }) }),
    /"zeromq" is invalid: expected redis or nats/,
  );
  refuses(() => selectBus({ busUrl: "mqtt://h", env: envOf({}) }), /--bus-url "mqtt:\/\/h" is invalid/);
  refuses(
    () => selectBus({ env: envOf({ MSIGHT_PUBSUB_BACKEND: "nats", MSIGHT_NATS_SERVERS: "nats://h:4222" }) }),
    /MSIGHT_NATS_SERVERS="nats:\/\/h:4222" is invalid: expected a list like/,
  );
  refuses(
    () =>
      selectBus({
        env: envOf({
          MSIGHT_REDIS_MESSAGE_BROKER_USE_CLUSTER: "yes",
          MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES: "['h:x']",
        }),
      }),
    /CLUSTER_NODES entry "h:x" is invalid: expected host:port/,
  );
  refuses(
    () => selectBus({ busUrl: "nats://u:topsecret@h", env: envOf({ MSIGHT_PUBSUB_BACKEND: "redis" }) }),
    /disagree/,
  );
  // The password never appears in the message.
  assert.throws(
    () => selectBus({ busUrl: "nats://u:topsecret@h", env: envOf({ MSIGHT_PUBSUB_BACKEND: "redis" }) }),
    (e: Error) => !e.message.includes("topsecret"),
  );
});

Deno.test("select: Python list literals as ast.literal_eval reads them", () => {
  assert.deepEqual(parsePythonList(`[ 'a:1' , "b:2" ]`, "X", "[]"), ["a:1", "b:2"]);
  assert.deepEqual(parsePythonList(`[]`, "X", "[]"), []);
  assert.deepEqual(parsePythonList(`['it\\'s']`, "X", "[]"), ["it's"]);
  for (const bad of [`'a'`, `[a]`, `['a' 'b']`, `['a`, `['a',,]`]) {
    assert.throws(() => parsePythonList(bad, "X", "['h:1']"), UsageError, bad);
  }
  assert.equal(maskUrl("nats://u:p@h:1"), "nats://***:***@h:1");
});
