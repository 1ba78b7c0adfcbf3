/**
 * The layering check: on the real tree it passes (the same run as `deno task check`), and on synthetic graphs
 * each rule fires, naming the files.
 */
import assert from "node:assert/strict";
import { DENO, ROOT } from "../helpers/process.ts";
import { checkLayers, type FileNode, findCycles, MAX_NODE_LINES } from "../../scripts/check_layers.ts";

const file = (imports: string[] = [], lines = 10): FileNode => ({ imports, lines });

Deno.test("check_layers: the project's own tree passes", async () => {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "scripts/check_layers.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(new TextDecoder().decode(out.stdout), /^layers ok: \d+ files, \d+ imports, no cycle$/m);
});

Deno.test("check_layers: on a made-up tree, deno info's graph (type-only imports too) breaks every rule", async () => {
  const root = await Deno.makeTempDir({ prefix: "check_layers_tree_" });
  try {
    const files: Record<string, string> = {
      "deno.json": "{}\n",
      // A cycle through a type-only import, which also takes src/runtime above itself.
      "src/runtime/log.ts": 'import { x } from "../bus/b.ts";\nexport const y = x;\n',
      "src/bus/b.ts": 'import type { T } from "../capture/c.ts";\nexport const x = 1;\nexport type U = T;\n',
      "src/capture/c.ts": 'import { y } from "../runtime/log.ts";\nexport type T = typeof y;\n',
      "src/sinks/s.ts": 'import { h } from "../../test/helpers/h.ts";\nexport const s = h;\n',
      "test/helpers/h.ts": "export const h = 1;\n",
      "nodes/long.ts": 'import { s } from "../src/sinks/s.ts";\n' +
        "console.log(s);\n".repeat(MAX_NODE_LINES),
      "nodes/short.ts": 'import { s } from "../src/sinks/s.ts";\nconsole.log(s);\n',
    };
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(`${root}/${path.slice(0, path.lastIndexOf("/") + 1)}`, { recursive: true });
      await Deno.writeTextFile(`${root}/${path}`, text);
    }
    const out = await new Deno.Command(DENO, {
      args: ["run", "-A", "scripts/check_layers.ts", root],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    assert.equal(out.code, 1, lines.join("\n"));
    assert.deepEqual(lines, [
      `layers: node-length: nodes/long.ts has ${
        MAX_NODE_LINES + 1
      } lines: an entry point in nodes/ stays under ` +
      `${MAX_NODE_LINES + 1} (move the work into src/)`,
      "layers: runtime-bottom: src/runtime/log.ts imports src/bus/b.ts: src/runtime is the bottom layer and " +
      "imports only src/runtime",
      "layers: src-upward: src/sinks/s.ts imports test/helpers/h.ts: nothing under src/ may import nodes/, " +
      "bench/, scripts/, test/",
      "layers: cycle: import cycle: src/bus/b.ts -> src/capture/c.ts -> src/runtime/log.ts -> src/bus/b.ts",
      "layers: 4 violation(s) in 7 files",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("check_layers: a clean synthetic graph has no violation", () => {
  const violations = checkLayers({
    files: {
      "src/runtime/log.ts": file(["src/runtime/errors.ts"]),
      "src/runtime/errors.ts": file(),
      "src/bus/redis.ts": file(["src/runtime/log.ts"]),
      "nodes/echo.ts": file(["src/bus/redis.ts"], MAX_NODE_LINES),
      "test/bus/redis_test.ts": file(["src/bus/redis.ts", "test/helpers/net.ts"]),
      "test/helpers/net.ts": file(),
    },
  });
  assert.deepEqual(violations, []);
});

Deno.test("check_layers: each rule fires on a bad graph", () => {
  const violations = checkLayers({
    files: {
      // src/runtime reaching up into the bus
      "src/runtime/log.ts": file(["src/bus/redis.ts"]),
      // src/ reaching up into nodes/, bench/, test/
      "src/bus/redis.ts": file(["nodes/echo.ts", "bench/main.ts", "test/helpers/net.ts"]),
      "nodes/echo.ts": file([], MAX_NODE_LINES + 1),
      "bench/main.ts": file(),
      "test/helpers/net.ts": file(),
      // a three-file cycle and a file importing itself
      "src/capture/a.ts": file(["src/capture/b.ts"]),
      "src/capture/b.ts": file(["src/capture/c.ts"]),
      "src/capture/c.ts": file(["src/capture/a.ts"]),
      "src/codec/self.ts": file(["src/codec/self.ts"]),
      // the console reaching past the bus interface into a back end
      "src/web/console.ts": file(["src/bus/types.ts", "src/bus/nats/mod.ts"]),
      "src/bus/types.ts": file(),
      "src/bus/nats/mod.ts": file(),
    },
  });
  const by = (rule: string) => violations.filter((v) => v.rule === rule).map((v) => v.message);
  assert.deepEqual(by("runtime-bottom"), [
    "src/runtime/log.ts imports src/bus/redis.ts: src/runtime is the bottom layer and imports only src/runtime",
  ]);
  assert.equal(by("src-upward").length, 3);
  for (const [i, dep] of ["nodes/echo.ts", "bench/main.ts", "test/helpers/net.ts"].entries()) {
    assert.match(by("src-upward")[i], new RegExp(`^src/bus/redis\\.ts imports ${dep.replace(".", "\\.")}: `));
  }
  assert.deepEqual(by("node-length"), [
    `nodes/echo.ts has ${MAX_NODE_LINES + 1} lines: an entry point in nodes/ stays under ${
      MAX_NODE_LINES + 1
    } (move the work into src/)`,
  ]);
  assert.deepEqual(by("cycle"), [
    "import cycle: src/capture/a.ts -> src/capture/b.ts -> src/capture/c.ts -> src/capture/a.ts",
    "import cycle: src/codec/self.ts -> src/codec/self.ts",
  ]);
  assert.deepEqual(by("bus-interface"), [
    "src/web/console.ts imports src/bus/nats/mod.ts: src/web/ runs on every back end and sees the bus only " +
    "through src/bus/types.ts",
  ]);
  assert.equal(violations.length, 8);
});

Deno.test("check_layers: a cycle is reported once, as a real path through its files", () => {
  // Two loops sharing a.ts form one component; the path must follow real edges.
  const graph = {
    files: {
      "src/a.ts": file(["src/b.ts", "src/x.ts"]),
      "src/b.ts": file(["src/a.ts"]),
      "src/x.ts": file(["src/y.ts"]),
      "src/y.ts": file(["src/a.ts", "src/leaf.ts"]),
      "src/leaf.ts": file(),
    },
  };
  const cycles = findCycles(graph);
  assert.equal(cycles.length, 1);
  const [path] = cycles;
  assert.equal(path[0], "src/a.ts");
  for (let i = 0; i < path.length; i++) {
    const from = path[i], to = path[(i + 1) % path.length];
    assert.ok(graph.files[from as keyof typeof graph.files].imports.includes(to), `${from} -> ${to}`);
  }
  assert.deepEqual(path, ["src/a.ts", "src/b.ts"]);
});
