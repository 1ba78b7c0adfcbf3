/**
 * A real RTSP camera for tests: runs `tools/rtsp_demo_server.py` (the GStreamer RTSP server) on a free loopback
 * port and controls it: stop (no process left), pause/resume (SIGSTOP/SIGCONT: a camera that keeps its sockets open
 * but sends nothing) and restart on the same port (a camera reboot).
 *
 * @example
 * ```ts
 * import { startRtspServer } from "./rtsp_server.ts";
 * const server = await startRtspServer({ source: "mcity" });
 * try {
 *   console.log(server.url); // rtsp://127.0.0.1:40123/live.stream
 * } finally {
 *   await server.stop();
 * }
 * ```
 * @module
 */

/** What to serve. */
export interface RtspServerOptions {
  /**
   * `synthetic`: videotestsrc + clock overlay; `mcity`: the real camera frames looped; `file`: `file`, decoded and
   * re-encoded, looped; `h264file`: an MP4 `file` holding H.264, sent as it is (no decode or encode), looped.
   */
  source: "synthetic" | "mcity" | "file" | "h264file";
  /** Synthetic frame size (1280x720). */
  width?: number;
  height?: number;
  /** videotestsrc pattern for `synthetic` (`ball`; `red`, `green`, `blue` are solid colours). */
  pattern?: string;
  /** Frame rate (25 synthetic and file, 10 mcity). */
  fps?: number;
  /** Mount path (`/live.stream`); a unique path makes the stream's clients easy to find with `pgrep -f`. */
  path?: string;
  /** Video file for `source: "file"`. */
  file?: string;
  /**
   * `file` and `h264file`: loop the file (true). False plays it once, with no seeks: the test camera's looping seeks
   * race GStreamer's RTSP server, which can abort on a loaded machine (tools/rtsp_demo_server.py, LoopingFactory).
   */
  loop?: boolean;
  /** Accepted RTSP transports (tcp+udp). */
  protocols?: "tcp+udp" | "tcp" | "udp";
  /** Port to listen on (0: a free one). */
  port?: number;
  /** Seconds to wait for the server to listen (10). */
  startTimeoutS?: number;
}

/** A running test camera. */
export interface RtspServer {
  /** `rtsp://127.0.0.1:PORT/PATH`. */
  readonly url: string;
  readonly port: number;
  /** Pid of the current server process. */
  readonly pid: number;
  /** Terminates the server and waits for it (SIGKILL after 2 s); idempotent. */
  stop(): Promise<void>;
  /** SIGSTOP: connections stay open, nothing is sent or answered. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Stops it and starts it again on the same port. */
  restart(): Promise<void>;
  /** For a failing test's message: whether the server process is still alive, and the last lines it printed. */
  diagnostics(): string;
}

const SCRIPT = new URL("../../tools/rtsp_demo_server.py", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";

interface Proc {
  child: Deno.ChildProcess;
  port: number;
  pumps: Promise<void>;
  stderrTail: string[];
  /** The exit status once the process has ended on its own or been stopped. */
  exit?: Deno.CommandStatus;
}

// Every live server process, killed at exit if a test forgot (or failed before) stop().
const live = new Set<Deno.ChildProcess>();
globalThis.addEventListener("unload", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }
});

function argsFor(o: RtspServerOptions, port: number): string[] {
  const args = [
    SCRIPT,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--source",
    o.source,
    "--exit-with-parent",
  ];
  if (o.width) args.push("--width", String(o.width));
  if (o.height) args.push("--height", String(o.height));
  if (o.fps) args.push("--fps", String(o.fps));
  if (o.pattern) args.push("--pattern", o.pattern);
  if (o.path) args.push("--path", o.path);
  if (o.file) args.push("--file", o.file);
  if (o.protocols) args.push("--protocols", o.protocols);
  if (o.loop === false) args.push("--no-loop");
  return args;
}

async function launch(o: RtspServerOptions, port: number): Promise<Proc> {
  const child = new Deno.Command(PYTHON, {
    args: argsFor(o, port),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child);
  const stderrTail: string[] = [];
  let resolveReady: (port: number) => void = () => {};
  const ready = new Promise<number>((r) => (resolveReady = r));
  const pumpOut = (async () => {
    let text = "";
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += dec.decode(chunk, { stream: true });
      const m = /LISTENING (\d+)/.exec(text);
      if (m) resolveReady(Number(m[1]));
      if (text.length > 4096) text = text.slice(-1024);
    }
  })();
  const pumpErr = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderrTail.push(...dec.decode(chunk, { stream: true }).split("\n").filter((l) => l));
      if (stderrTail.length > 50) stderrTail.splice(0, stderrTail.length - 50);
    }
  })();
  const pumps = Promise.all([pumpOut, pumpErr]).then(() => {});
  const timeoutMs = (o.startTimeoutS ?? 10) * 1000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    ready.then((p) => ({ port: p })),
    child.status.then((s) => ({ exited: s.code })),
    new Promise<{ timeout: true }>((r) => (timer = setTimeout(() => r({ timeout: true }), timeoutMs))),
  ]);
  clearTimeout(timer);
  if ("port" in outcome) {
    const p: Proc = { child, port: outcome.port, pumps, stderrTail };
    child.status.then((st) => (p.exit = st));
    return p;
  }
  try {
    child.kill("SIGKILL");
  } catch { /* gone */ }
  await child.status;
  await pumps;
  live.delete(child);
  const why = "exited" in outcome
    ? `exited with code ${outcome.exited}`
    : `not listening after ${timeoutMs} ms`;
  throw new Error(`RTSP test server ${why}: ${stderrTail.slice(-5).join(" | ")}`);
}

async function terminate(p: Proc, paused: boolean): Promise<void> {
  const { child } = p;
  try {
    // A stopped process would keep SIGTERM pending forever: kill it outright.
    child.kill(paused ? "SIGKILL" : "SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 2000);
  await child.status;
  clearTimeout(timer);
  await p.pumps;
  live.delete(child);
}

/**
 * Starts a GStreamer RTSP server on 127.0.0.1 and resolves once it listens.
 *
 * @example
 * ```ts
 * const cam = await startRtspServer({ source: "synthetic", width: 1280, height: 720, fps: 25, path: "/t-42" });
 * cam.pause(); cam.resume(); await cam.restart(); await cam.stop();
 * ```
 */
export async function startRtspServer(opts: RtspServerOptions): Promise<RtspServer> {
  const path = opts.path ? (opts.path.startsWith("/") ? opts.path : "/" + opts.path) : "/live.stream";
  let proc: Proc | undefined = await launch(opts, opts.port ?? 0);
  const port = proc.port;
  let paused = false;
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (p) await terminate(p, paused);
    paused = false;
  };
  const signal = (sig: Deno.Signal) => {
    if (!proc) throw new Error("RTSP test server is not running");
    Deno.kill(proc.child.pid, sig);
  };
  return {
    url: `rtsp://127.0.0.1:${port}${path}`,
    port,
    get pid() {
      return proc?.child.pid ?? -1;
    },
    stop,
    pause() {
      signal("SIGSTOP");
      paused = true;
    },
    resume() {
      signal("SIGCONT");
      paused = false;
    },
    diagnostics() {
      if (!proc) return "RTSP test server stopped";
      const { exit, stderrTail } = proc;
      const state = exit ? `exited (code ${exit.code}, signal ${exit.signal ?? "none"})` : "running";
      return `RTSP test server ${state}; its last lines: ${stderrTail.slice(-8).join(" | ") || "none"}`;
    },
    async restart() {
      await stop();
      // The old listening socket may linger for a moment: retry the bind briefly.
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          proc = await launch(opts, port);
          return;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}
