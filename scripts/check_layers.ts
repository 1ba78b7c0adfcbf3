/**
 * `deno task check`'s layering check (after Deno std's `_tools/check_circular_package_dependencies.ts`):
 * reads the project's import graph from `deno info --json` and fails, one line per violation, when a file
 * imports in a cycle, when `src/runtime` imports anything else of the project, when `src/` imports `nodes/`,
 * `bench/`, `scripts/` or `test/`, when a module that sees the bus only through its interface (`src/web`) imports
 * a back end, or when an entry point in `nodes/` reaches 100 lines. Type-only imports count.
 *
 * @example
 * ```ts
 * import { checkLayers } from "./check_layers.ts";
 * const violations = checkLayers({
 *   files: {
 *     "src/runtime/log.ts": { imports: ["src/bus/redis.ts"], lines: 10 },
 *     "src/bus/redis.ts": { imports: [], lines: 5 },
 *   },
 * });
 * console.log(violations.map((v) => v.message)); // ["src/runtime/log.ts imports src/bus/redis.ts: ..."]
 * ```
 * @module
 */

/** One project file: the project files it imports (paths relative to the root) and its length in lines. */
export interface FileNode {
  imports: string[];
  lines: number;
}

/** The project's import graph, keyed by path relative to the root (`src/bus/redis.ts`). */
export interface ProjectGraph {
  files: Record<string, FileNode>;
}

/** Which rule a violation breaks. */
export type Rule = "cycle" | "runtime-bottom" | "src-upward" | "bus-interface" | "node-length";

export interface Violation {
  rule: Rule;
  message: string;
}

/** The longest a `nodes/*.ts` entry point may be: it parses flags and hands over to `src/`. */
export const MAX_NODE_LINES = 99;

/** Folders that `src/` must never import: they sit on top of it. */
const ABOVE_SRC = ["nodes/", "bench/", "scripts/", "test/"];

/** Modules that run on every back end, so they see the bus only through `src/bus/types.ts`. */
const BEHIND_BUS_INTERFACE = ["src/web/"];
/** The back ends' own modules (`src/bus/connect.ts` picks one; `src/node/run_node.ts` connects). */
const BUS_BACK_ENDS = [
  "src/bus/nats/",
  "src/bus/redis_backend/",
  "src/bus/redis_cluster/",
  "src/bus/redis.ts",
];

/** Applies every rule to a graph; pure, so a test can feed it a bad graph. */
export function checkLayers(graph: ProjectGraph): Violation[] {
  const out: Violation[] = [];
  for (const [file, node] of Object.entries(graph.files).sort(([a], [b]) => a.localeCompare(b))) {
    for (const dep of node.imports) {
      if (file.startsWith("src/runtime/") && !dep.startsWith("src/runtime/")) {
        out.push({
          rule: "runtime-bottom",
          message: `${file} imports ${dep}: src/runtime is the bottom layer and imports only src/runtime`,
        });
      }
      if (file.startsWith("src/") && ABOVE_SRC.some((p) => dep.startsWith(p))) {
        out.push({
          rule: "src-upward",
          message: `${file} imports ${dep}: nothing under src/ may import ${ABOVE_SRC.join(", ")}`,
        });
      }
      if (
        BEHIND_BUS_INTERFACE.some((p) => file.startsWith(p)) && BUS_BACK_ENDS.some((p) => dep.startsWith(p))
      ) {
        out.push({
          rule: "bus-interface",
          message: `${file} imports ${dep}: ${
            BEHIND_BUS_INTERFACE.join(", ")
          } runs on every back end and sees the bus only through src/bus/types.ts`,
        });
      }
    }
    if (/^nodes\/[^/]+\.ts$/.test(file) && node.lines > MAX_NODE_LINES) {
      out.push({
        rule: "node-length",
        message: `${file} has ${node.lines} lines: an entry point in nodes/ stays under ${
          MAX_NODE_LINES + 1
        } (move the work into src/)`,
      });
    }
  }
  for (const cycle of findCycles(graph)) {
    out.push({ rule: "cycle", message: `import cycle: ${[...cycle, cycle[0]].join(" -> ")}` });
  }
  return out;
}

/**
 * One cycle per strongly connected component of more than one file (or a file importing itself), found with
 * Tarjan's algorithm; each is reported as a path through the component, starting at its first file by name.
 */
export function findCycles(graph: ProjectGraph): string[][] {
  const edges = (f: string) => (graph.files[f]?.imports ?? []).filter((d) => d in graph.files);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || edges(v).includes(v)) components.push(comp.sort());
    }
  };
  for (const f of Object.keys(graph.files).sort()) if (!index.has(f)) visit(f);
  return components.map((comp) => cyclePath(comp, edges)).sort((a, b) => a[0].localeCompare(b[0]));
}

/** A shortest way from the component's first file back to itself, staying inside the component. */
function cyclePath(comp: string[], edges: (f: string) => string[]): string[] {
  const inside = new Set(comp);
  const start = comp[0];
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of edges(v)) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(prev.get(path[0])!);
        return path;
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return comp; // unreachable for a strongly connected component
}

/** Folders whose TypeScript files make up the graph. */
const ROOTS = ["src", "nodes", "bench", "scripts", "test", "tools"];

/** Every `.ts` file under the root's folders (fixtures excluded), relative to the root. */
async function projectFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory && rel !== "test/fixtures") await walk(rel);
      else if (e.isFile && e.name.endsWith(".ts")) out.push(rel);
    }
  };
  for (const dir of ROOTS) {
    try {
      await walk(dir);
    } catch (err) {
      // A folder the project does not have (tools/ holds no TypeScript today) has nothing to check.
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return out.sort();
}

interface DenoInfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

/** Builds the graph with one `deno info --json` over a temporary module that imports every project file. */
export async function loadGraph(root: string): Promise<ProjectGraph> {
  const files = await projectFiles(root);
  const rootUrl = new URL(`file://${root.endsWith("/") ? root : root + "/"}`);
  const tmp = await Deno.makeTempDir({ prefix: "check_layers_" });
  try {
    const entry = `${tmp}/all.ts`;
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import ${JSON.stringify(new URL(f, rootUrl).href)};\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", new URL("deno.json", rootUrl).pathname, entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: DenoInfoModule[] };
    const rel = (spec: string) => spec.startsWith(rootUrl.href) ? spec.slice(rootUrl.href.length) : undefined;
    const graph: ProjectGraph = { files: {} };
    for (const f of files) {
      const text = await Deno.readTextFile(new URL(f, rootUrl));
      graph.files[f] = { imports: [], lines: text.split("\n").length - (text.endsWith("\n") ? 1 : 0) };
    }
    for (const m of info.modules) {
      const file = rel(m.specifier);
      if (file === undefined || !(file in graph.files)) continue;
      const deps = new Set<string>();
      for (const d of m.dependencies ?? []) {
        for (const target of [d.code?.specifier, d.type?.specifier]) {
          const dep = target === undefined ? undefined : rel(target);
          if (dep !== undefined) deps.add(dep);
        }
      }
      graph.files[file].imports = [...deps].sort();
    }
    return graph;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  // The project root: this script's parent folder, or the one folder given (the test checks a made-up tree).
  const root = Deno.args[0] ?? new URL("../", import.meta.url).pathname;
  const graph = await loadGraph(root);
  const violations = checkLayers(graph);
  for (const v of violations) console.error(`layers: ${v.rule}: ${v.message}`);
  const files = Object.keys(graph.files).length;
  const imports = Object.values(graph.files).reduce((n, f) => n + f.imports.length, 0);
  if (violations.length > 0) {
    console.error(`layers: ${violations.length} violation(s) in ${files} files`);
    Deno.exit(1);
  }
  console.log(`layers ok: ${files} files, ${imports} imports, no cycle`);
}
