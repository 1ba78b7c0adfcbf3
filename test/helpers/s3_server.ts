/**
 * A real S3 server for tests: a single-node Ceph cluster (one monitor, one memstore OSD) with its radosgw gateway,
 * all on loopback in a temporary directory, from the Debian packages `radosgw ceph-mon ceph-osd`. Unlike a mock,
 * radosgw checks signatures, Content-MD5, and gives multipart ETags with the `-N` suffix.
 *
 * Each daemon runs in the foreground in its own process group, owned by the returned handle: `stop()` kills the
 * groups and removes the directory. Every wait is bounded. Start takes about 10-15 s, so share one server per
 * test file.
 *
 * @example
 * ```ts
 * import { startS3Server } from "./s3_server.ts";
 * const s3 = await startS3Server();
 * try {
 *   // new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: {...} })
 *   await s3.pauseGateway(); // S3 "down"
 *   await s3.restartGateway(); // back, same port and data
 * } finally {
 *   await s3.stop();
 * }
 * ```
 * @module
 */

import { delay } from "../../src/runtime/async.ts";
import { freePort } from "./net.ts";

/** A running test S3 server. */
export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Milliseconds the cluster took to start (until the gateway answered and the user existed). */
  startMs: number;
  /** The temporary directory holding configuration and logs. */
  dir: string;
  /** Kills the gateway (the cluster keeps its data): S3 is unreachable until {@linkcode restartGateway}. */
  pauseGateway(): Promise<void>;
  /** Starts the gateway again on the same port and waits until it answers. */
  restartGateway(): Promise<void>;
  /** Kills every daemon and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startS3Server}. */
export interface S3ServerOptions {
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Bound on the whole start, in ms (default 90 s). */
  timeoutMs?: number;
}

const BINARIES = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "setsid"];

/**
 * Returns null when the Ceph binaries are installed, else a line saying what is missing and how to install it.
 *
 * @example
 * ```ts
 * import { s3ServerMissing } from "./s3_server.ts";
 * const why = s3ServerMissing(); // null where radosgw can run
 * ```
 */
export function s3ServerMissing(): string | null {
  const dirs = (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":").concat(["/usr/bin", "/usr/sbin"]);
  const missing = BINARIES.filter((b) =>
    !dirs.some((d) => {
      try {
        return Deno.statSync(`${d}/${b}`).isFile;
      } catch {
        return false;
      }
    })
  );
  if (missing.length === 0) return null;
  return `radosgw test server needs ${missing.join(", ")}: ` +
    "apt-get install --no-install-recommends radosgw ceph-mon ceph-osd ceph-mgr";
}

/** Runs a command to completion within `timeoutMs`; throws with its output on failure. */
async function runChecked(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.signal ?? out.code}): ${text.trim().slice(-2000)}`,
    );
  }
  return text;
}

/** A daemon in the foreground, in its own process group so a kill reaches anything it forked. */
class Daemon {
  #child: Deno.ChildProcess;
  constructor(readonly name: string, cmd: string, args: string[]) {
    this.#child = new Deno.Command("setsid", {
      args: [cmd, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    })
      .spawn();
  }
  /** Kills the group with SIGKILL (memstore has nothing to flush) and reaps the process, within 10 s. */
  async kill(): Promise<void> {
    try {
      Deno.kill(-this.#child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#child.status, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
  }
}

async function waitHttp(url: string, deadline: number, what: () => string): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status < 500) return;
    } catch {
      // Not listening yet.
    }
    await delay(250);
  }
  throw new Error(`radosgw did not answer at ${url} in time; ${what()}`);
}

function tail(path: string, lines = 15): string {
  try {
    return Deno.readTextFileSync(path).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts a single-node Ceph cluster with radosgw on loopback and creates an S3 user with known keys.
 *
 * @example
 * ```ts
 * import { startS3Server } from "./s3_server.ts";
 * const s3 = await startS3Server({ accessKeyId: "TESTKEY", secretAccessKey: "TESTSECRET" });
 * console.log(s3.endpoint, s3.startMs);
 * await s3.stop();
 * ```
 */
export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3TestServer> {
  const missing = s3ServerMissing();
  if (missing) throw new Error(missing);
  const t0 = Date.now();
  const deadline = t0 + (opts.timeoutMs ?? 90_000);
  const accessKeyId = opts.accessKeyId ?? "MSIGHTTESTACCESSKEY1";
  const secretAccessKey = opts.secretAccessKey ?? "msight-test-secret-key-0123456789abcdef";
  const dir = await Deno.makeTempDir({ prefix: "msight-rgw-" });
  const [monPort, monPort1, rgwPort] = [freePort(), freePort(), freePort()];
  const conf = `${dir}/ceph.conf`;
  const daemons: Daemon[] = [];
  let gateway: Daemon | null = null;
  let stopped = false;

  // `ms mon client mode = crc`: without it radosgw fails to authenticate to the monitor (with auth "none") and
  // retries for 300 s. Memstore keeps the OSD in RAM: fast, and nothing to clean on disk.
  await Deno.writeTextFile(
    conf,
    `[global]
fsid = ${crypto.randomUUID()}
mon host = [v2:127.0.0.1:${monPort},v1:127.0.0.1:${monPort1}]
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms mon client mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = ${dir}/run
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
admin socket = ${dir}/run/$name.asok
mon data = ${dir}/mon/$name
osd data = ${dir}/osd/$name
keyring = ${dir}/keyring
[mon.a]
public addrv = [v2:127.0.0.1:${monPort},v1:127.0.0.1:${monPort1}]
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
`,
  );
  for (const d of ["run", "log", "mon/mon.a", "osd/osd.0", "rgw"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }

  const remaining = () => Math.max(1000, deadline - Date.now());
  const startGateway = async () => {
    gateway = new Daemon("radosgw", "radosgw", ["-f", "-c", conf, "-n", "client.rgw"]);
    await waitHttp(
      `http://127.0.0.1:${rgwPort}/`,
      Date.now() + 60_000,
      () => `log tail:\n${tail(`${dir}/log/client.rgw.log`)}`,
    );
  };
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (gateway) await gateway.kill();
    for (const d of daemons.reverse()) await d.kill();
    if (!Deno.env.get("MSIGHT_KEEP_RGW_DIR")) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  try {
    await runChecked("ceph-mon", ["-c", conf, "--mkfs", "-i", "a"], remaining());
    daemons.push(new Daemon("ceph-mon", "ceph-mon", ["-f", "-c", conf, "-i", "a"]));
    await runChecked("ceph", ["-c", conf, "--connect-timeout", "30", "osd", "create"], remaining());
    await runChecked("ceph-osd", ["-c", conf, "-i", "0", "--mkfs"], remaining());
    daemons.push(new Daemon("ceph-osd", "ceph-osd", ["-f", "-c", conf, "-i", "0"]));
    await startGateway();
    await runChecked("radosgw-admin", [
      "-c",
      conf,
      "user",
      "create",
      "--uid=msight-test",
      "--display-name=msight test",
      `--access-key=${accessKeyId}`,
      `--secret-key=${secretAccessKey}`,
    ], remaining());
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    endpoint: `http://127.0.0.1:${rgwPort}`,
    accessKeyId,
    secretAccessKey,
    region: "us-east-1",
    startMs: Date.now() - t0,
    dir,
    async pauseGateway() {
      const g = gateway;
      gateway = null;
      await g?.kill();
    },
    async restartGateway() {
      if (gateway) return;
      await startGateway();
    },
    stop,
  };
}
