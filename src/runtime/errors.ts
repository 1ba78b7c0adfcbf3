/**
 * Errors that end a node with a one-line message and a chosen exit code, never a stack trace.
 *
 * Throw {@linkcode UsageError} for bad flags or configuration (exit 2, as argparse does), and
 * {@linkcode FatalError} for a fault that makes running impossible (unwritable directory, missing binary).
 * {@linkcode SegmentError} is the other kind: one segment lost, counted, and the node goes on.
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 * throw new UsageError("--fps 0 is invalid: expected a number > 0");
 * ```
 * @module
 */

/** A bad command line, config file or environment value: the node exits 2 with the message. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A condition the node cannot run under: it exits with `exitCode` (default 1) and the message. */
export class FatalError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "FatalError";
  }
}

/**
 * One unit of work failed (a segment could not be encoded or delivered): the node counts it under `reason`, logs
 * it and goes on. Unlike {@linkcode FatalError} it never ends the node.
 */
export class SegmentError extends Error {
  constructor(message: string, readonly reason: string) {
    super(message);
    this.name = "SegmentError";
  }
}

/**
 * The exit code a process ends with for a thrown value: a {@linkcode UsageError}'s 2, a {@linkcode FatalError}'s
 * own code, 1 for anything else (a bug: the message says "unexpected").
 *
 * @example
 * ```ts
 * import { exitCodeOf, UsageError } from "./errors.ts";
 * exitCodeOf(new UsageError("--fps 0 is invalid")); // 2
 * ```
 */
export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError || err instanceof FatalError ? err.exitCode : 1;
}

/**
 * Returns the one-line text of any thrown value, without a stack. A Redis ACL refusal from ioredis (its error
 * carries the command) names the command and its key or channel, which Redis' own text does not.
 */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const text = err.message.split("\n")[0] || err.name;
  const cmd = (err as { command?: { name?: unknown; args?: unknown[] } }).command;
  if (/^NOPERM\b/.test(text) && typeof cmd?.name === "string") {
    const target = cmd.args?.[0];
    return `Redis refused ${cmd.name.toUpperCase()}${
      target === undefined ? "" : ` ${String(target)}`
    }: ${text}`;
  }
  return text;
}

/** Whether `err` is Redis refusing a command, key or channel to this user (ACL `NOPERM`): not worth a retry. */
export function isRedisPermissionError(err: unknown): boolean {
  return /\bNOPERM\b/.test(errorMessage(err));
}
