/**
 * The console's access token: from `--auth-token` (or `MSIGHT_WEB_TOKEN`), or the first line of `--auth-token-file`
 * (so it stays out of `ps` and shell history).
 * @module
 */

import { UsageError } from "../runtime/errors.ts";

/** The token, or undefined when none was given. */
export async function readToken(token?: string, file?: string): Promise<string | undefined> {
  if (!file) return token || undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new UsageError(
      `--auth-token-file ${file} cannot be read (${(err as Error).name}): give a readable file`,
    );
  }
  const first = text.split("\n")[0].trim();
  if (first.length < 8) {
    throw new UsageError(
      `--auth-token-file ${file}: the token on its first line is shorter than 8 characters`,
    );
  }
  return first;
}
