/**
 * Runs a node as a real child process for a test: collects its stdout and stderr lines, waits for a line, sends
 * signals, and always kills it at the end.
 *
 * @example
 * ```ts
 * import { startNode } from "./process.ts";
 * const p = startNode("nodes/echo.ts", ["-st", "t"], { REDIS_URL: "redis://127.0.0.1:6379" });
 * await p.waitForLine(/listening on t/);
 * p.kill("SIGTERM");
 * console.log(await p.exit);
 * ```
 * @module
 */

import assert from "node:assert/strict";

export const DENO = new URL("../../.tools/node_modules/.bin/deno", import.meta.url).pathname;
export const ROOT = new URL("../../", import.meta.url).pathname;

/** A child node process under test. */
export interface NodeProcess {
  child: Deno.ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the exit code. */
  exit: Promise<number>;
  waitForLine(re: RegExp, timeoutMs?: number, stream?: "stdout" | "stderr" | "any"): Promise<string>;
  kill(signal?: Deno.Signal): void;
  /** Sends `signal` to the whole process group (`kill -SIG -- -PGID`); only for a process started `detached`. */
  killGroup(signal?: Deno.Signal): void;
  /** SIGKILL if still running, and wait. */
  stop(): Promise<void>;
}

async function pump(stream: ReadableStream<Uint8Array>, into: string[], onLine: () => void): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      into.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      onLine();
    }
  }
  if (buf) into.push(buf), onLine();
}

/** Options of {@linkcode startProcess}. */
export interface StartOptions {
  /**
   * Start it in its own session and process group (`setsid`), as a terminal or systemd does: its group can then be
   * signalled with {@linkcode NodeProcess.killGroup} without reaching the test runner.
   */
  detached?: boolean;
}

/** Starts `deno run <permissions> <script> <args>` from the project root; permissions default to `-A`. */
export function startNode(
  script: string,
  args: string[],
  env: Record<string, string>,
  permissions: string[] = ["-A"],
  opts: StartOptions = {},
): NodeProcess {
  return startProcess(DENO, ["run", ...permissions, script, ...args], env, ROOT, opts);
}

/** Sends SIGTERM and asserts that the node exits 0; `message` is the assertion's message. */
export async function stopsCleanly(node: NodeProcess, message?: string): Promise<void> {
  node.kill("SIGTERM");
  assert.equal(await node.exit, 0, message);
}

/** Starts any command with the same line capture, in the project root unless `cwd` is given. */
export function startProcess(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd: string = ROOT,
  opts: StartOptions = {},
): NodeProcess {
  const child = new Deno.Command(cmd, {
    args,
    env,
    cwd,
    detached: opts.detached ?? false,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  })
    .spawn();
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const notify = () => waiters.forEach((w) => w());
  const pumps = Promise.all([pump(child.stdout, stdout, notify), pump(child.stderr, stderr, notify)]);
  let exited = false;
  const exit = child.status.then(async (s) => {
    await pumps;
    exited = true; // before the notice, so a waiter sees the exit and stops waiting
    notify();
    return s.code;
  });
  return {
    child,
    stdout,
    stderr,
    exit,
    waitForLine(re, timeoutMs = 15_000, stream = "any") {
      return new Promise((resolve, reject) => {
        const check = () => {
          const pools = stream === "stdout" ? [stdout] : stream === "stderr" ? [stderr] : [stdout, stderr];
          for (const pool of pools) {
            const hit = pool.find((l) => re.test(l));
            if (hit !== undefined) return done(() => resolve(hit));
          }
          if (exited) {
            done(() =>
              reject(new Error(`process exited before printing ${re}:\n${stderr.slice(-10).join("\n")}`))
            );
          }
        };
        const timer = setTimeout(
          () =>
            done(() =>
              reject(new Error(`no line ${re} within ${timeoutMs} ms:\n${stderr.slice(-15).join("\n")}`))
            ),
          timeoutMs,
        );
        const done = (fn: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        waiters.add(check);
        check();
      });
    },
    kill(signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch {
        // Already exited.
      }
    },
    killGroup(signal = "SIGTERM") {
      if (!opts.detached) {
        throw new Error("killGroup: the process was not started in its own group (detached)");
      }
      try {
        Deno.kill(-child.pid, signal);
      } catch {
        // The whole group has exited.
      }
    },
    async stop() {
      if (opts.detached) this.killGroup("SIGKILL");
      else if (!exited) this.kill("SIGKILL");
      await exit;
    },
  };
}
