/**
 * Crash-safe file writes: the bytes go to a temporary name in the same directory, are fsynced, then renamed over
 * the final name and the directory is fsynced. A reader (or a restart after power loss) sees either the old file
 * or the whole new one, never a torn one. Temporary names are hidden (`.<name>.tmp-<random>`) and
 * {@linkcode cleanupTempFiles} removes the ones a crash left behind.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic_file.ts";
 * await writeFileAtomic("/data/cam_20260124_162845_649586.json", '{"a": 1}\n');
 * ```
 * @module
 */

import { randomBytes } from "node:crypto";
import { errorMessage, FatalError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";

/** Infix of every temporary name, so leftovers are recognisable. */
export const TEMP_INFIX = ".tmp-";

const encoder = new TextEncoder();

function splitPath(path: string): { dir: string; base: string } {
  const i = path.lastIndexOf("/");
  if (i < 0) return { dir: ".", base: path };
  return { dir: i === 0 ? "/" : path.slice(0, i), base: path.slice(i + 1) };
}

/**
 * True for a name {@linkcode writeFileAtomic} uses while writing.
 *
 * @example
 * ```ts
 * import { isTempName } from "./atomic_file.ts";
 * isTempName(".a.mp4.tmp-0f3a9c1e"); // true
 * ```
 */
export function isTempName(name: string): boolean {
  return name.startsWith(".") && /\.tmp-[0-9a-f]{8}$/.test(name);
}

/**
 * Fsyncs a directory so a rename or unlink in it survives power loss.
 *
 * @example
 * ```ts
 * import { syncDir } from "./atomic_file.ts";
 * await syncDir("/data");
 * ```
 */
export async function syncDir(dir: string): Promise<void> {
  const f = await Deno.open(dir, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

/** Options of {@linkcode writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Permission bits of the new file (default 0o644, less the umask). */
  mode?: number;
  /** Skip the directory fsync, when the caller syncs it once after several files. */
  skipDirSync?: boolean;
}

/**
 * Writes `data` to `path` atomically (temp file, fsync, rename, fsync of the directory). On failure the temporary
 * file is removed and the error rethrown; an existing file at `path` is left as it was.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic_file.ts";
 * await writeFileAtomic("/data/seg.mp4", new Uint8Array([0, 0, 0, 24]));
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const { dir, base } = splitPath(path);
  const tmp = `${dir}/.${base}${TEMP_INFIX}${randomBytes(4).toString("hex")}`;
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const f = await Deno.open(tmp, { write: true, createNew: true, mode: opts.mode ?? 0o644 });
  try {
    try {
      let off = 0;
      while (off < bytes.byteLength) off += await f.write(bytes.subarray(off));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    // The temporary file may never have been created; the original error is what matters.
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  if (!opts.skipDirSync) await syncDir(dir);
}

/**
 * Removes the temporary files a crashed writer left in `dir` (not recursive) and returns their names. Call it on
 * start, before any writer of this process runs in `dir`.
 *
 * @example
 * ```ts
 * import { cleanupTempFiles } from "./atomic_file.ts";
 * const removed = await cleanupTempFiles("/data");
 * ```
 */
export async function cleanupTempFiles(dir: string, log?: Logger): Promise<string[]> {
  const removed: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !isTempName(e.name)) continue;
    try {
      await Deno.remove(`${dir}/${e.name}`);
      removed.push(e.name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  if (removed.length > 0) {
    log?.warn(`removed ${removed.length} temporary file(s) left by an interrupted write in ${dir}`, {
      files: removed.join(","),
    });
  }
  return removed;
}

/**
 * Creates `dir` if missing and proves it writable with a probe file, so a node refuses to start, in one line, rather
 * than fail on its first segment. `what` names the directory (`save directory`); `grant` says where this process's
 * write permission comes from, for the line given when Deno's sandbox refuses.
 *
 * @example
 * ```ts
 * import { ensureWritableDir } from "./atomic_file.ts";
 * await ensureWritableDir("./received_videos", "save directory", "bin/msight-launch grants exactly --save-dir");
 * ```
 */
export async function ensureWritableDir(dir: string, what: string, grant: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const probe = `${dir}/.msight-write-probe`;
    await writeFileAtomic(probe, "");
    await Deno.remove(probe);
  } catch (err) {
    // A sandbox refusal (NotCapable) gets its own line: Deno's "run again with --allow-write" hint misleads
    // under bin/msight-launch or a compiled binary, where the grant follows the node's flag or the build.
    throw new FatalError(
      err instanceof Deno.errors.NotCapable
        ? `${what} ${dir} is not writable: Deno's write permission of this process does not cover it (${grant})`
        : `${what} ${dir} is not writable: ${errorMessage(err)}`,
    );
  }
}
