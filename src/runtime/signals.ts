/**
 * Shutdown signals for every program of the project (nodes, `deno task up`, the demo): the first SIGINT/SIGTERM
 * starts a graceful stop; one arriving within {@linkcode REPEAT_WINDOW_MS} of the first is the same event delivered
 * twice and is ignored; a later one means "exit now".
 *
 * Why the window: a signal sent to a whole process group (`kill -TERM -- -PGID`, Ctrl-C in a terminal, systemd's
 * `KillMode=control-group`) also reaches `deno task` or a shell above the program, which passes it on: the program
 * gets it twice within milliseconds. A person who means "now" presses Ctrl-C again well after a second.
 *
 * @example
 * ```ts
 * import { onShutdownSignals } from "./signals.ts";
 * const sigs = onShutdownSignals({
 *   onStop: (sig) => console.log(`stopping on ${sig}`),
 *   onRepeat: (sig) => Deno.exit(128 + (sig === "SIGINT" ? 2 : 15)),
 * });
 * sigs.dispose();
 * ```
 * @module
 */

/** A second signal this soon after the first (ms) is the same signal delivered twice, not "exit now". */
export const REPEAT_WINDOW_MS = 1000;

/** What a signal means, given the ones before it. */
export type SignalMeaning = "stop" | "duplicate" | "repeat";

/**
 * The rule alone, for any clock: the first signal is `stop`; any within `windowMs` of the first is `duplicate`;
 * any later one is `repeat`.
 *
 * @example
 * ```ts
 * const gate = new SignalGate();
 * gate.receive(0); // "stop"
 * gate.receive(3); // "duplicate"
 * gate.receive(2000); // "repeat"
 * ```
 */
export class SignalGate {
  #firstAt: number | undefined;
  constructor(readonly windowMs: number = REPEAT_WINDOW_MS) {}

  /** Classifies a signal received at `nowMs`. */
  receive(nowMs: number): SignalMeaning {
    if (this.#firstAt === undefined) {
      this.#firstAt = nowMs;
      return "stop";
    }
    return nowMs - this.#firstAt < this.windowMs ? "duplicate" : "repeat";
  }

  /** Whether a stop signal has arrived. */
  get stopping(): boolean {
    return this.#firstAt !== undefined;
  }
}

/** Options of {@linkcode onShutdownSignals}. */
export interface ShutdownSignalOptions {
  /** The signals handled (SIGINT and SIGTERM). */
  signals?: readonly Deno.Signal[];
  /** See {@linkcode REPEAT_WINDOW_MS}. */
  windowMs?: number;
  /** The first signal: start a graceful stop. */
  onStop(sig: Deno.Signal): void;
  /** A signal after the window: exit at once. */
  onRepeat(sig: Deno.Signal): void;
  /** A duplicate inside the window (to log it at debug level). */
  onDuplicate?(sig: Deno.Signal): void;
}

/** The listeners installed by {@linkcode onShutdownSignals}. */
export interface ShutdownSignals {
  /** The first signal received, if any. */
  readonly received: Deno.Signal | undefined;
  /** Removes the listeners. */
  dispose(): void;
}

/** Installs listeners for the shutdown signals that apply {@linkcode SignalGate}'s rule. */
export function onShutdownSignals(opts: ShutdownSignalOptions): ShutdownSignals {
  const gate = new SignalGate(opts.windowMs);
  let received: Deno.Signal | undefined;
  const listeners = (opts.signals ?? ["SIGINT", "SIGTERM"]).map((sig) => {
    const fn = () => {
      const meaning = gate.receive(performance.now());
      if (meaning === "stop") {
        received = sig;
        opts.onStop(sig);
      } else if (meaning === "repeat") opts.onRepeat(sig);
      else opts.onDuplicate?.(sig);
    };
    Deno.addSignalListener(sig, fn);
    return [sig, fn] as const;
  });
  return {
    get received() {
      return received;
    },
    dispose() {
      for (const [sig, fn] of listeners) Deno.removeSignalListener(sig, fn);
    },
  };
}

/** The shell's exit code for a process ended by `sig` (128 + its number). */
export function signalExitCode(sig: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
  return 128 + (numbers[sig] ?? 15);
}
