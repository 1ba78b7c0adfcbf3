/**
 * A private `nats-server -js` (JetStream, file storage in a temporary folder) on a free loopback port for one test
 * file; killed on stop, restartable on the same port and store. Options add a user/password or a smaller
 * `max_payload` through a generated configuration file. {@linkcode startNatsCluster} starts a JetStream cluster of
 * such servers instead (distinct `server_name`s, routes on loopback), any of which a test can kill.
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

import { distinctFreePorts, freePort, waitFor } from "./net.ts";

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
  try {
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
      20_000,
      `nats-server on port ${port}`,
    );
  } catch (err) {
    await kill(child);
    throw err;
  }
  return child;
}

/** The configuration lines of a server listening on `port` with JetStream stored in `dir`. */
const serverLines = (port: number, dir: string) => [
  `listen: "127.0.0.1:${port}"`,
  `jetstream { store_dir: ${JSON.stringify(dir)}, max_memory_store: 64MB, max_file_store: 1GB }`,
];

async function kill(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await child.status;
}

/** `launch`, with a missing binary said in one line. */
async function launchOrExplain(port: number, conf: string): Promise<Deno.ChildProcess> {
  try {
    return await launch(port, conf);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error("nats-server is not installed (run ./edge setup test)");
    }
    throw err;
  }
}

/** Starts a private nats-server with JetStream; throws a clear error when the binary is missing. */
export async function startNats(opts: NatsServerOptions = {}): Promise<TestNats> {
  const port = await freePort();
  const dir = await Deno.makeTempDir({ prefix: "msight-nats-" });
  const lines = serverLines(port, dir);
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
    child = await launchOrExplain(port, conf);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
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
      await kill(child);
      await Deno.remove(dir, { recursive: true });
    },
    async restart(downMs = 500) {
      await kill(child);
      await new Promise((r) => setTimeout(r, downMs));
      child = await launch(port, conf);
    },
  };
}

/** A running test NATS cluster. */
export interface TestNatsCluster {
  /** Client ports, server `i` on `ports[i]`. */
  ports: number[];
  /** Server names (`n1`, `n2`, ...), as JetStream names a stream's leader. */
  names: string[];
  /** `nats://127.0.0.1:p1,127.0.0.1:p2,...`, the `--bus-url` form. */
  url: string;
  /** Environment for a node process, MSight's way: `MSIGHT_NATS_SERVERS` lists every server. */
  env: Record<string, string>;
  /** The server holding the client connection named `name` (from each server's monitoring `/connz`). */
  serverOf(name: string): Promise<number | undefined>;
  /** SIGKILLs server `i` (its store stays until `stop`). */
  kill(i: number): Promise<void>;
  /** Kills every server left and removes their stores. */
  stop(): Promise<void>;
}

/** A server's monitoring endpoint `path` as JSON; undefined while it does not answer. */
async function monitor<T>(port: number, path: string): Promise<T | undefined> {
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}${path}`);
  } catch {
    return undefined; // Not listening (yet, or killed): the caller polls again or skips it.
  }
  if (!res.ok) {
    await res.body?.cancel();
    return undefined;
  }
  return await res.json() as T;
}

/**
 * Starts `n` (3) servers with JetStream joined in one cluster, and resolves once every one has routes to all the
 * others and JetStream's meta group has a leader and all `n` peers (so an asset with 3 replicas can be created).
 */
export async function startNatsCluster(n = 3): Promise<TestNatsCluster> {
  const root = await Deno.makeTempDir({ prefix: "msight-nats-cluster-" });
  const free = distinctFreePorts(3 * n);
  const ports = free.slice(0, n), routePorts = free.slice(n, 2 * n), httpPorts = free.slice(2 * n);
  const names = ports.map((_, i) => `n${i + 1}`);
  const routes = routePorts.map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`)).join(", ");
  const children = new Map<number, Deno.ChildProcess>();
  const stop = async () => {
    for (const child of children.values()) await kill(child);
    children.clear();
    await Deno.remove(root, { recursive: true });
  };
  try {
    for (let i = 0; i < n; i++) {
      const dir = `${root}/${names[i]}`;
      await Deno.mkdir(dir);
      const conf = `${dir}/nats.conf`;
      await Deno.writeTextFile(
        conf,
        [
          `server_name: ${names[i]}`,
          ...serverLines(ports[i], dir),
          `http: "127.0.0.1:${httpPorts[i]}"`,
          `cluster { name: msight-test, listen: "127.0.0.1:${routePorts[i]}", routes: [${routes}] }`,
        ].join("\n") + "\n",
      );
      children.set(i, await launchOrExplain(ports[i], conf));
    }
    for (const hp of httpPorts) {
      await waitFor(
        async () => {
          const routez = await monitor<{ num_routes: number }>(hp, "/routez");
          const jsz = await monitor<{ meta_cluster?: { leader?: string; cluster_size?: number } }>(
            hp,
            "/jsz",
          );
          return routez?.num_routes === n - 1 && !!jsz?.meta_cluster?.leader &&
            jsz.meta_cluster.cluster_size === n;
        },
        60_000,
        `NATS cluster member on monitoring port ${hp}`,
        200,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const url = `nats://${ports.map((p) => `127.0.0.1:${p}`).join(",")}`;
  return {
    ports,
    names,
    url,
    env: {
      MSIGHT_PUBSUB_BACKEND: "nats",
      MSIGHT_NATS_SERVERS: `[${ports.map((p) => `'nats://127.0.0.1:${p}'`).join(", ")}]`,
      MSIGHT_EDGE_DEVICE_NAME: "test-device",
    },
    async serverOf(name) {
      for (const [i] of children) {
        const connz = await monitor<{ connections?: { name?: string }[] }>(httpPorts[i], "/connz?limit=1024");
        if (connz?.connections?.some((c) => c.name === name)) return i;
      }
      return undefined;
    },
    async kill(i) {
      const child = children.get(i);
      if (!child) return;
      children.delete(i);
      await kill(child);
    },
    stop,
  };
}
