/**
 * The ending of a command-line tool that is not a node (status, demo, compile): run `main`, print `--help` and exit
 * 0, or print one line `<prog>: error: ...` and exit 2 for a usage error, the error's own code for a fatal one, 1
 * otherwise. Never a stack trace; no child process outlives the tool.
 *
 * @example
 * ```ts
 * import { runTool } from "./run_tool.ts";
 * if (import.meta.main) await runTool("status", async () => 0);
 * ```
 * @module
 */

import { killAllChildren } from "../runtime/children.ts";
import { errorMessage, exitCodeOf, UsageError } from "../runtime/errors.ts";
import { HelpRequested } from "../runtime/flags.ts";

/** Runs `main` and exits the process with its code (see the module doc). */
export async function runTool(prog: string, main: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(err.text);
      code = 0;
    } else {
      const text = errorMessage(err);
      // The flag parser already names the program in its messages.
      console.error(
        err instanceof UsageError && text.startsWith(`${prog}:`) ? text : `${prog}: error: ${text}`,
      );
      code = exitCodeOf(err);
    }
  }
  killAllChildren("SIGKILL");
  Deno.exit(code);
}
