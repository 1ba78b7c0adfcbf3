/**
 * `examples/reference.yaml` lists every flag of every pipeline node exactly as the flag specs define it (as
 * MediaMTX's TestDefaultConfFile keeps its reference configuration honest): each flag with a default is set
 * to that default, each required flag is set, each other flag is shown commented out, every set flag has a
 * comment, and nothing else is there; and `up` accepts the file.
 */
import { DEFAULT_CAMERAS_PER_PROCESS } from "../../src/launcher/process_plan.ts";
import assert from "node:assert/strict";
import { isMap, isScalar, LineCounter, parseDocument, type Scalar, type YAMLMap } from "yaml";
import { BUS_BACKENDS, BUS_KEYS } from "../../src/launcher/bus_plan.ts";
import { parsePipeline } from "../../src/launcher/pipeline_config.ts";
import { PIPELINE_NODE_TYPES, type PipelineNodeType } from "../../src/launcher/node_kinds.ts";
import { AGGREGATOR_FLAGS } from "../../src/node/aggregator_flags.ts";
import { COMMON_FLAGS } from "../../src/node/common_flags.ts";
import { DUMPER_FLAGS } from "../../src/node/dumper_flags.ts";
import { PUSHER_FLAGS } from "../../src/node/pusher_flags.ts";
import { RTSP_FLAGS } from "../../src/node/rtsp_flags.ts";
import { WEB_FLAGS } from "../../src/node/web_flags.ts";
import type { FlagSpecs } from "../../src/runtime/flags.ts";

const PATH = new URL("../../examples/reference.yaml", import.meta.url);
const TEXT = await Deno.readTextFile(PATH);
const OWN_FLAGS: Record<PipelineNodeType, FlagSpecs> = {
  rtsp: ownOnly(RTSP_FLAGS),
  aggregator: ownOnly(AGGREGATOR_FLAGS),
  dumper: ownOnly(DUMPER_FLAGS),
  pusher: ownOnly(PUSHER_FLAGS),
  web: ownOnly(WEB_FLAGS),
};
/** A node's flags less the common ones it only re-declares with a short alias (`-g` for `--gap`): defaults.all has those. */
function ownOnly(specs: FlagSpecs): FlagSpecs {
  return Object.fromEntries(
    Object.entries(specs).filter(([key, spec]) => {
      const common = (COMMON_FLAGS as FlagSpecs)[key];
      return !(common && common.long === spec.long && common.default === spec.default);
    }),
  );
}
/** The file's variables, unset: `${VAR:-default}` takes its default, as on a machine that sets none. */
const NO_ENV = (_: string) => undefined;

/**
 * Checks one `flags:` mapping against its specs. `owner` is the key whose value the mapping is (`all:`,
 * `flags:`): the mapping's text runs from there, so comment lines before its first flag belong to it.
 */
function checkSection(
  where: string,
  owner: Scalar,
  map: YAMLMap,
  specs: FlagSpecs,
  lines: LineCounter,
): void {
  const text = TEXT.slice(owner.range![1], map.range![2]);
  const set = new Map<string, unknown>();
  for (const pair of map.items) {
    assert.ok(isScalar(pair.key) && isScalar(pair.value), `${where}: ${String(pair.key)} is a plain value`);
    const name = String(pair.key.value);
    set.set(name, pair.value.value);
    const line = TEXT.split("\n")[lines.linePos(pair.key.range![0]).line - 1];
    assert.match(line, / # \S/, `${where}: ${name} has a one-line comment: ${line}`);
  }
  const longs = new Set(Object.values(specs).map((s) => s.long));
  for (const name of set.keys()) assert.ok(longs.has(name), `${where}: ${name} is not a flag of the specs`);
  for (const spec of Object.values(specs)) {
    const at = `${where}: ${spec.long}`;
    if (spec.default !== undefined) {
      assert.ok(set.has(spec.long), `${at} (default ${JSON.stringify(spec.default)}) is missing`);
      assert.deepEqual(set.get(spec.long), spec.default, `${at} is not its default`);
    } else if (spec.required && spec.long !== "name") {
      assert.ok(set.has(spec.long), `${at} is required and missing`);
    } else {
      // No default (or the node's name, which is per node): shown commented out, not set.
      assert.ok(!set.has(spec.long), `${at} has no default: show it commented out, not set`);
      assert.match(text, new RegExp(`^\\s*# ${spec.long}: \\S`, "m"), `${at} is missing (commented out)`);
    }
  }
}

Deno.test("reference.yaml: every common flag is in defaults.all, at its default", () => {
  const lines = new LineCounter();
  const doc = parseDocument(TEXT, { lineCounter: lines });
  assert.deepEqual(doc.errors, []);
  const defaults = doc.get("defaults") as YAMLMap;
  assert.ok(isMap(defaults));
  assert.deepEqual(defaults.items.map((p) => String(p.key)), ["all"], "the node flags are set on the nodes");
  const all = defaults.items[0];
  assert.ok(isMap(all.value) && isScalar(all.key));
  checkSection("defaults.all", all.key, all.value, COMMON_FLAGS, lines);
});

Deno.test("reference.yaml: one node of each type, with every flag of its own", () => {
  const lines = new LineCounter();
  const doc = parseDocument(TEXT, { lineCounter: lines });
  const nodes = doc.get("nodes") as { items: YAMLMap[] };
  const types = nodes.items.map((n) => String(n.get("node")));
  assert.deepEqual(types.toSorted(), [...PIPELINE_NODE_TYPES].toSorted());
  for (const node of nodes.items) {
    const type = String(node.get("node")) as PipelineNodeType;
    const flags = node.items.find((p) => String(p.key) === "flags");
    assert.ok(flags && isScalar(flags.key) && isMap(flags.value), `the ${type} node has flags`);
    checkSection(`nodes[${type}].flags`, flags.key, flags.value, OWN_FLAGS[type], lines);
  }
});

Deno.test("reference.yaml: up accepts it, and each node runs with every default of its specs", () => {
  const pipeline = parsePipeline(TEXT, "examples/reference.yaml", NO_ENV);
  assert.deepEqual(pipeline.warnings, []);
  assert.equal(pipeline.redis?.mode, "start");
  // Top-level settings at their defaults too.
  assert.equal(pipeline.camerasPerProcess, DEFAULT_CAMERAS_PER_PROCESS);
  assert.match(TEXT, new RegExp(`^cameras_per_process: ${DEFAULT_CAMERAS_PER_PROCESS} #`, "m"));
  assert.deepEqual(pipeline.nodes.map((n) => n.type), ["rtsp", "aggregator", "dumper", "pusher", "web"]);
  for (const node of pipeline.nodes) {
    const specs: FlagSpecs = { ...COMMON_FLAGS, ...OWN_FLAGS[node.type] };
    for (const [key, spec] of Object.entries(specs)) {
      if (spec.default !== undefined) {
        assert.equal(node.effective[key], spec.default, `${node.name}: ${spec.long}`);
      }
    }
    assert.equal(node.effective.name, node.name);
  }
});

Deno.test("reference.yaml: every key of bus: is shown (commented out: the file runs on its private Redis)", () => {
  for (const key of BUS_KEYS) {
    assert.match(TEXT, new RegExp(`^#   ${key}: \\S.* # \\S`, "m"), `bus.${key} is shown with a comment`);
  }
  const backends = TEXT.match(/^# {3}backend: .*$/m)![0];
  for (const b of BUS_BACKENDS) assert.ok(backends.includes(b), `backend ${b} is named: ${backends}`);
  assert.equal(parsePipeline(TEXT, "examples/reference.yaml", NO_ENV).bus, undefined);
});
