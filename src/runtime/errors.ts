/**
 * Errors that end a node with a one-line message and a chosen exit code, never a stack trace.
 *
 * Throw {@linkcode UsageError} for bad flags or configuration (exit 2, as argparse does), and
 * {@linkcode FatalError} for a fault that makes running impossible (unwritable directory, missing binary).
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
