/**
 * A private `nats-server -js` (JetStream, file storage in a temporary folder) on a free loopback port for one test
 * file; killed on stop, restartable on the same port and store. Options add a user/password or a smaller
 * `max_payload` through a generated configuration file.
 *
 * @example
 * ```ts
 * import { startNats } from "./nats_server.ts";
 * const nats = await startNats();
 * // ... MSIGHT_BUS_URL=nats.url ...
 * await nats.stop();
 * ```
 * @module
 */

import { freePort, waitFor } from "./net.ts";

/** A running test NATS server. */
export interface TestNats {
  port: number;
  url: string;
  /** Environment for a node process pointed at this server, MSight's way. */
  env: Record<string, string>;
  stop(): Promise<void>;
  /** The HTTP monitoring port (`/connz`, `/subsz`), when asked for with `monitor`. */
  monitorPort?: number;
  /** Kills it, waits `downMs`, and starts it again (same port, same JetStream store). */
  restart(downMs?: number): Promise<void>;
}

/** Options of {@linkcode startNats}. */
export interface NatsServerOptions {
  user?: string;
  pass?: string;
  /** The server's `max_payload` in bytes (default 1 MB). */
  maxPayload?: number;
  /** Also serve the HTTP monitoring endpoints on a free loopback port (to see who subscribed to what). */
  monitor?: boolean;
}

async function launch(port: number, conf: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("nats-server", { args: ["-c", conf], stdout: "null", stderr: "null" })
    .spawn();
  await waitFor(
    async () => {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        const buf = new Uint8Array(4);
        const n = await c.read(buf); // the server greets with INFO
        c.close();
        return n !== null && new TextDecoder().decode(buf.subarray(0, n)) === "INFO";
      } catch {
        return false;
      }
    },
    10_000,
    `nats-server on port ${port}`,
  );
  return child;
}

/** Starts a private nats-server with JetStream; throws a clear error when the binary is missing. */
export async function startNats(opts: NatsServerOptions = {}): Promise<TestNats> {
  const port = await freePort();
  const dir = await Deno.makeTempDir({ prefix: "msight-nats-" });
  const lines = [
    `listen: "127.0.0.1:${port}"`,
    `jetstream { store_dir: ${JSON.stringify(dir)}, max_memory_store: 64MB, max_file_store: 1GB }`,
  ];
  if (opts.maxPayload) lines.push(`max_payload: ${opts.maxPayload}`);
  const monitorPort = opts.monitor ? freePort() : undefined;
  if (monitorPort) lines.push(`http: "127.0.0.1:${monitorPort}"`);
  if (opts.user) {
    lines.push(
      `authorization { user: ${JSON.stringify(opts.user)}, password: ${JSON.stringify(opts.pass ?? "")} }`,
    );
  }
  const conf = `${dir}/nats.conf`;
  await Deno.writeTextFile(conf, lines.join("\n") + "\n");
  let child: Deno.ChildProcess;
  try {
    child = await launch(port, conf);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    if (err instanceof Deno.errors.NotFound) {
      throw new Error("nats-server is not installed (run ./edge setup test)");
    }
    throw err;
  }
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  };
  const url = `nats://127.0.0.1:${port}`;
  return {
    port,
    url,
    monitorPort,
    env: {
      MSIGHT_PUBSUB_BACKEND: "nats",
      MSIGHT_NATS_SERVERS: `['${url}']`,
      MSIGHT_EDGE_DEVICE_NAME: "test-device",
    },
    async stop() {
      await kill();
      await Deno.remove(dir, { recursive: true });
    },
    async restart(downMs = 500) {
      await kill();
      await new Promise((r) => setTimeout(r, downMs));
      child = await launch(port, conf);
    },
  };
}
