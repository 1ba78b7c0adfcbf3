/**
 * Which files the console may serve: only regular files under the configured directories, named by a relative
 * path of plain components. `..`, absolute paths, empty or hidden components, backslashes and NUL are refused
 * before the file system is touched; a symbolic link (anywhere on the path) that leads out of its directory is
 * refused after resolving it, so a link planted in a save directory cannot expose the rest of the disk.
 *
 * @example
 * ```ts
 * import { resolveUnder } from "./safe_path.ts";
 * const real = await resolveUnder("/data/videos", "cam_20260124_162845_649586.mp4"); // a real path, or null
 * ```
 * @module
 */

/** Most characters a served path may have. */
export const MAX_PATH_LENGTH = 512;

/** True when `rel` is a relative path of plain components (checked before touching the disk). */
export function isPlainRelativePath(rel: string): boolean {
  if (rel.length === 0 || rel.length > MAX_PATH_LENGTH) return false;
  if (rel.includes("\0") || rel.includes("\\") || rel.startsWith("/")) return false;
  return rel.split("/").every((c) => c !== "" && !c.startsWith("."));
}

/** True when `path` is `dir` or inside it (both absolute and normalised). */
export function isInside(path: string, dir: string): boolean {
  const d = dir.endsWith("/") ? dir : dir + "/";
  return path === dir || path.startsWith(d);
}

/**
 * The real path of `rel` under `root` when it names a regular file that is really inside `root`; `null` otherwise
 * (missing, not a file, or escaping through a link): the caller answers 404 either way, so nothing is revealed.
 */
export async function resolveUnder(root: string, rel: string): Promise<string | null> {
  if (!isPlainRelativePath(rel)) return null;
  try {
    const realRoot = await Deno.realPath(root);
    const real = await Deno.realPath(`${realRoot}/${rel}`);
    if (!isInside(real, realRoot) || real === realRoot) return null;
    const st = await Deno.stat(real);
    return st.isFile ? real : null;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return null;
    if (err instanceof Deno.errors.PermissionDenied) return null;
    throw err;
  }
}
