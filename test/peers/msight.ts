/**
 * Runs MSight_Core 2.0.2's own Python code (the copy in `test/peers/msight_core/`) with Debian's Python 3, the
 * stand-ins of `test/peers/msight_core/standins/` (see the README there) and the vendored nats-py
 * (`test/peers/nats_py/`), for the interop tests.
 *
 * @example
 * ```ts
 * import { msightCommand } from "./msight.ts";
 * const out = await msightCommand("launch_rtsp", ["--help"], {}).output();
 * ```
 * @module
 */

/** The copy of MSight's source (its `msight_core/` and `cli/` packages). */
export const MSIGHT_ROOT = new URL("./msight_core/", import.meta.url).pathname;
/**
 * MSight's `PYTHONPATH`: the stand-ins first, then nats-py 2.15.0 (vendored in `test/peers/nats_py/`, pure Python:
 * Debian has no package of it), then MSight's tree.
 */
export const MSIGHT_PYTHONPATH = `${MSIGHT_ROOT}standins:${
  new URL("./nats_py/", import.meta.url).pathname
}:${MSIGHT_ROOT}`;
/** Debian's Python, the one whose packages (python3-av, python3-opencv, ...) the test profile installs. */
export const PYTHON = "/usr/bin/python3";

/** MSight's four CLIs of our nodes, by our node kind. */
export const MSIGHT_CLIS = {
  rtsp: "launch_rtsp",
  aggregator: "launch_image_to_video_aggregator",
  dumper: "launch_video_local_dumper",
  pusher: "launch_aws_video_pusher",
} as const;

/** `python3 -m cli.<module> ARGS` in MSight's tree, with the stand-ins on the path and `env` added. */
export function msightCommand(
  module: string,
  args: string[],
  env: Record<string, string>,
  opts: { stdout?: "piped" | "null"; stderr?: "piped" | "null" } = {},
): Deno.Command {
  return new Deno.Command(PYTHON, {
    args: ["-u", "-m", `cli.${module}`, ...args],
    cwd: MSIGHT_ROOT,
    env: {
      MSIGHT_EDGE_DEVICE_NAME: "msight-test",
      PYTHONPATH: MSIGHT_PYTHONPATH,
      PYTHONDONTWRITEBYTECODE: "1",
      ...env,
    },
    stdin: "null",
    stdout: opts.stdout ?? "piped",
    stderr: opts.stderr ?? "piped",
  });
}

/** Whether Debian's Python and the packages MSight imports are here (the test profile of scripts/setup.sh). */
export async function msightAvailable(): Promise<string | null> {
  try {
    const r = await new Deno.Command(PYTHON, {
      args: ["-c", "import av, cv2, numpy, msgpack, redis, yaml, boto3, tabulate, websockets, zstandard"],
      stdout: "null",
      stderr: "piped",
    }).output();
    return r.success ? null : new TextDecoder().decode(r.stderr).trim().split("\n").at(-1) ?? "import failed";
  } catch (err) {
    return `${PYTHON}: ${err}`;
  }
}

/**
 * The option strings of an argparse `--help` text, one entry per option with all its spellings
 * (e.g. `["--name", "-n"]`) and whether it takes a value.
 */
export function argparseOptions(help: string): { names: string[]; takesValue: boolean }[] {
  const lines = help.split("\n");
  const start = lines.findIndex((l) => /^(options|optional arguments):\s*$/.test(l));
  if (start < 0) throw new Error(`no options section in:\n${help}`);
  const out: { names: string[]; takesValue: boolean }[] = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^ {2}(-\S.*?)(?: {2,}|$)/.exec(line);
    if (!m) continue;
    const parts = m[1].split(", ");
    out.push({
      names: parts.map((p) => p.split(" ")[0]),
      takesValue: parts.some((p) => p.includes(" ")),
    });
  }
  return out;
}
