/**
 * Where in a pipeline file something is: a key path such as `nodes[2].flags.fps`, the error that carries one, and
 * the line of the file it points at. Every check of the pipeline launcher throws a {@linkcode PipelineError}; the
 * loader turns it into one line, `pipeline.yaml: nodes[2].flags.fps: --fps 0 is invalid: ... (line 14)`.
 *
 * @example
 * ```ts
 * import { formatKeyPath, PipelineError } from "./key_path.ts";
 * formatKeyPath(["nodes", 2, "flags", "fps"]); // "nodes[2].flags.fps"
 * throw new PipelineError(["redis", "port"], "expected a port number");
 * ```
 * @module
 */

import { isMap, isScalar, isSeq, type LineCounter, type Node as YamlNode } from "yaml";
import { UsageError } from "../runtime/errors.ts";

/** A path into the parsed file: mapping keys and list indexes. */
export type KeyPath = readonly (string | number)[];

/**
 * `["nodes", 2, "flags", "fps"]` as `nodes[2].flags.fps`; the empty path (the whole file) as `(top level)`.
 *
 * @example
 * ```ts
 * formatKeyPath(["cameras", 0, "url"]); // "cameras[0].url"
 * ```
 */
export function formatKeyPath(path: KeyPath): string {
  let out = "";
  for (const seg of path) out += typeof seg === "number" ? `[${seg}]` : out ? `.${seg}` : seg;
  return out || "(top level)";
}

/**
 * A bad pipeline file: `path` is where, `detail` what is wrong and what would be right (one line, no file name).
 *
 * @example
 * ```ts
 * throw new PipelineError(["nodes", 0, "node"], "rtps is not a node type (did you mean rtsp?)");
 * ```
 */
export class PipelineError extends UsageError {
  constructor(readonly path: KeyPath, readonly detail: string) {
    super(`${formatKeyPath(path)}: ${detail}`);
    this.name = "PipelineError";
  }
}

/**
 * The 1-based line of the deepest part of `path` found in the YAML document (the key's line for a mapping entry),
 * or undefined when the document has no position for it (e.g. a value reached through an alias).
 *
 * @example
 * ```ts
 * import { LineCounter, parseDocument } from "yaml";
 * const lc = new LineCounter();
 * const doc = parseDocument("a:\n  b: 1\n", { lineCounter: lc });
 * lineOf(doc.contents, lc, ["a", "b"]); // 2
 * ```
 */
export function lineOf(root: unknown, lc: LineCounter, path: KeyPath): number | undefined {
  let node: unknown = root;
  let offset = (node as YamlNode | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      offset = (pair.key as YamlNode).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number" && node.items[seg]) {
      node = node.items[seg];
      offset = (node as YamlNode).range?.[0] ?? offset;
    } else break;
  }
  return offset === undefined ? undefined : lc.linePos(offset).line;
}
