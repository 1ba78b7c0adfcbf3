/**
 * Runs several processes as one pipeline: prefixes each line they print with the process's name, restarts a
 * process that exits unexpectedly (exponential backoff, reset after it has run a while), and on stop sends SIGTERM
 * to the nodes in the order they were started (the source first, so each downstream node still receives what its
 * upstream flushes on the way out), then to the services (Redis, the demo camera) in reverse order; each gets a
 * grace period before SIGKILL. The supervisor owns every child: none outlives it.
 *
 * @example
 * ```ts
 * import { Supervisor } from "./supervisor.ts";
 * const sup = new Supervisor({ log: (l) => console.log(l) });
 * sup.add({ name: "redis", cmd: "redis-server", args: ["--port", "6390"] });
 * await sup.stop(10);
 * ```
 * @module
 */

import { Backoff, delay } from "../runtime/async.ts";
import { trackChild } from "../runtime/children.ts";

/** One supervised process. */
export interface ProcessSpec {
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Restart it when it exits while the pipeline runs (default true). */
  restart?: boolean;
  /** Print its output (default true). */
  echo?: boolean;
  /** `service` (Redis, a camera) stops after every `node` (default `node`). */
  role?: "service" | "node";
  /**
   * Run it in its own session (default false). A terminal's Ctrl-C goes to the whole foreground process group: a
   * child in that group would get SIGINT together with the supervisor and stop out of order (a sink before its
   * upstream flushed, Redis before the nodes); detached, it stops only when the supervisor stops it.
   */
  detached?: boolean;
}

/** Options of a {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** Receives each output line, already prefixed. */
  log: (line: string) => void;
  /** First restart delay and its cap, seconds (1, 30). */
  backoffS?: [number, number];
  /** Width of the name column (12); longer names are cut, so give the longest name's length. */
  prefixWidth?: number;
}

interface Running {
  spec: ProcessSpec;
  child?: Deno.ChildProcess;
  /** Restart delays; `failures` is the restart count shown in the log. */
  backoff: Backoff;
  stopping: boolean;
  exited: Promise<void>;
}

async function pipeLines(stream: ReadableStream<Uint8Array>, emit: (line: string) => void): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        emit(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  } catch {
    // The process went away mid-line.
  }
  if (buf) emit(buf);
}

/** A set of supervised processes; see the module doc. */
export class Supervisor {
  #procs: Running[] = [];
  #stopping = false;
  /** Aborted by stop(): ends the waits before restarts, so no timer outlives the supervisor. */
  readonly #stop = new AbortController();
  readonly #width: number;

  constructor(readonly opts: SupervisorOptions) {
    this.#width = opts.prefixWidth ?? 12;
  }

  /** Starts a process and keeps it running until {@linkcode Supervisor.stop}. */
  add(spec: ProcessSpec): void {
    const [initial, max] = this.opts.backoffS ?? [1, 30];
    const r: Running = {
      spec,
      backoff: new Backoff({ initial, max }),
      stopping: false,
      exited: Promise.resolve(),
    };
    this.#procs.push(r);
    this.#start(r);
  }

  /** Names of the processes that are running now. */
  get running(): string[] {
    return this.#procs.filter((p) => p.child !== undefined).map((p) => p.spec.name);
  }

  #prefix(name: string): string {
    return `${name.padEnd(this.#width).slice(0, this.#width)} | `;
  }

  #start(r: Running): void {
    const { spec } = r;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(spec.cmd, {
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        detached: spec.detached ?? false,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      this.opts.log(
        `${this.#prefix(spec.name)}cannot start ${spec.cmd}: ${(err as Error).message.split("\n")[0]}`,
      );
      this.#scheduleRestart(r, Date.now());
      return;
    }
    trackChild(child, spec.detached ?? false);
    r.child = child;
    const started = Date.now();
    const emit = (line: string) => {
      if (spec.echo !== false) this.opts.log(this.#prefix(spec.name) + line);
    };
    const pipes = Promise.all([pipeLines(child.stdout, emit), pipeLines(child.stderr, emit)]);
    r.exited = child.status.then(async (status) => {
      await pipes;
      r.child = undefined;
      if (r.stopping || this.#stopping) return;
      this.opts.log(`${this.#prefix(spec.name)}exited with ${status.signal ?? `code ${status.code}`}`);
      this.#scheduleRestart(r, started);
    });
  }

  #scheduleRestart(r: Running, startedAt: number): void {
    if (r.spec.restart === false || this.#stopping) return;
    if (Date.now() - startedAt > 60_000) r.backoff.reset(); // it ran fine for a while: start the backoff over
    const waitS = r.backoff.next();
    this.opts.log(
      `${this.#prefix(r.spec.name)}restarting in ${waitS.toFixed(1)} s (restart ${r.backoff.failures})`,
    );
    void delay(waitS * 1000, this.#stop.signal).then(() => {
      if (!this.#stopping && !r.stopping) this.#start(r);
    });
  }

  /** Stops one process (SIGTERM, then SIGKILL after `graceS`) and does not restart it. */
  async stopOne(name: string, graceS: number): Promise<void> {
    const r = this.#procs.find((p) => p.spec.name === name);
    if (!r) return;
    r.stopping = true;
    await this.#terminate(r, graceS);
  }

  async #terminate(r: Running, graceS: number): Promise<void> {
    const child = r.child;
    if (!child) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited: nothing to wait for.
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.opts.log(`${this.#prefix(r.spec.name)}did not stop within ${graceS} s: killing it`);
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited in the meantime.
        }
        resolve();
      }, graceS * 1000);
    });
    await Promise.race([r.exited, killed]);
    clearTimeout(timer);
    await r.exited;
  }

  /** Stops the nodes in start order, then the services in reverse order, each within `graceS`. */
  async stop(graceS: number): Promise<void> {
    this.#stopping = true;
    this.#stop.abort();
    const nodes = this.#procs.filter((p) => p.spec.role !== "service");
    const services = this.#procs.filter((p) => p.spec.role === "service").reverse();
    for (const r of [...nodes, ...services]) {
      r.stopping = true;
      await this.#terminate(r, graceS);
    }
  }
}
