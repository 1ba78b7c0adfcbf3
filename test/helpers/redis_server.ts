/**
 * A private `redis-server` on a free loopback port for one test file: no persistence, killed on stop, restartable
 * on the same port (to test reconnects). With `{ tls: true }` it listens only on a TLS port with certificates
 * made for the test by openssl (a CA, the server's and a client's, plus a second, unrelated CA), and requires
 * client certificates.
 *
 * @example
 * ```ts
 * import { startRedis } from "./redis_server.ts";
 * const redis = await startRedis();
 * // ... REDIS_URL=redis.url ...
 * await redis.stop();
 * const secure = await startRedis({ tls: true });
 * // ... secure.env has MSIGHT_REDIS_MESSAGE_BROKER_USE_TLS and the certificate variables ...
 * await secure.stop();
 * ```
 * @module
 */

import { freePort, waitFor } from "./net.ts";
import { privateRedisArgs } from "../../src/launcher/private_redis.ts";

/** Certificate files made for a TLS test Redis (PEM). */
export interface TestCerts {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A CA that signed nothing here: trusting only it must refuse the server. */
  otherCaFile: string;
}

/** Options of {@linkcode startRedis}. */
export interface TestRedisOptions {
  /** Listen on TLS only (`--port 0 --tls-port`), client certificates required. */
  tls?: boolean;
}

/** A running test Redis. */
export interface TestRedis {
  port: number;
  /** `redis://` (or `rediss://` with TLS, which carries no certificates: use `env`). */
  url: string;
  /** The certificates, with TLS. */
  certs?: TestCerts;
  /** Environment for a node process pointed at this Redis. */
  env: Record<string, string>;
  stop(): Promise<void>;
  /** Stops it, waits `downMs`, and starts it again on the same port (empty, as after a real restart). */
  restart(downMs?: number): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, signed by it; and another CA. */
export async function makeCerts(): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "msight-redis-tls-" });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const ca of ["ca", "other-ca"]) {
    await openssl([
      "req",
      "-x509",
      ...key,
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${ca}`,
    ], dir);
  }
  // Extensions make them X.509 v3: rustls (Deno's TLS) refuses v1 certificates.
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  await Deno.writeTextFile(`${dir}/client.ext`, "extendedKeyUsage=clientAuth\n");
  for (const who of ["server", "client"]) {
    await openssl(["req", ...key, "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=${who}`], dir);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.crt`,
      "-days",
      "2",
      "-extfile",
      `${who}.ext`,
    ], dir);
  }
  return {
    dir,
    caFile: `${dir}/ca.crt`,
    certFile: `${dir}/client.crt`,
    keyFile: `${dir}/client.key`,
    otherCaFile: `${dir}/other-ca.crt`,
  };
}

function tlsArgs(port: number, c: TestCerts): string[] {
  return [
    "--port",
    "0",
    "--tls-port",
    String(port),
    "--tls-cert-file",
    `${c.dir}/server.crt`,
    "--tls-key-file",
    `${c.dir}/server.key`,
    "--tls-ca-cert-file",
    c.caFile,
    "--tls-auth-clients",
    "yes",
  ];
}

/** Connects as a client would: TLS with the client certificate when `certs` is given. */
async function connect(port: number, certs?: TestCerts): Promise<Deno.Conn> {
  if (!certs) return await Deno.connect({ hostname: "127.0.0.1", port });
  return await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [await Deno.readTextFile(certs.caFile)],
    cert: await Deno.readTextFile(certs.certFile),
    key: await Deno.readTextFile(certs.keyFile),
  });
}

async function launch(port: number, certs?: TestCerts): Promise<Deno.ChildProcess> {
  const base = privateRedisArgs(port);
  const child = new Deno.Command("redis-server", {
    // privateRedisArgs starts with `--port N`: with TLS the plain port is closed instead.
    args: certs ? [...base.slice(2), ...tlsArgs(port, certs)] : base,
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitFor(
    async () => {
      try {
        const c = await connect(port, certs);
        await c.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(16);
        const n = await c.read(buf);
        c.close();
        return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
      } catch {
        return false;
      }
    },
    10_000,
    `redis-server on port ${port}`,
  );
  return child;
}

/** Starts a private redis-server; throws a clear error when the binary is missing. */
export async function startRedis(opts: TestRedisOptions = {}): Promise<TestRedis> {
  const port = freePort();
  const certs = opts.tls ? await makeCerts() : undefined;
  let child: Deno.ChildProcess;
  try {
    child = await launch(port, certs);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error("redis-server is not installed (run ./edge setup)");
    }
    throw err;
  }
  const stopChild = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  };
  const env: Record<string, string> = certs
    ? {
      MSIGHT_REDIS_MESSAGE_BROKER_HOST: "127.0.0.1",
      MSIGHT_REDIS_MESSAGE_BROKER_PORT: String(port),
      MSIGHT_REDIS_MESSAGE_BROKER_USE_TLS: "true",
      MSIGHT_REDIS_MESSAGE_BROKER_TLS_CA_CERT_FILE: certs.caFile,
      MSIGHT_REDIS_MESSAGE_BROKER_TLS_CERT_FILE: certs.certFile,
      MSIGHT_REDIS_MESSAGE_BROKER_TLS_KEY_FILE: certs.keyFile,
      REDIS_URL: "", // REDIS_URL would win over the variables
      MSIGHT_EDGE_DEVICE_NAME: "test-device",
    }
    : { REDIS_URL: `redis://127.0.0.1:${port}/0`, MSIGHT_EDGE_DEVICE_NAME: "test-device" };
  return {
    port,
    url: `${certs ? "rediss" : "redis"}://127.0.0.1:${port}/0`,
    certs,
    env,
    async stop() {
      await stopChild();
      if (certs) await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
    },
    async restart(downMs = 500) {
      await stopChild();
      await new Promise((r) => setTimeout(r, downMs));
      child = await launch(port, certs);
    },
  };
}
