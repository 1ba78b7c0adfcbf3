/**
 * Every flag MSight's CLI for one of our four nodes accepts, read from MSight's own `--help` (so a future MSight
 * that adds a flag fails here), is accepted by ours with the same spelling and arity, or is a kept difference that
 * the README's "Differences from MSight" names.
 */
import assert from "node:assert/strict";
import { NODE_KINDS } from "../../src/launcher/node_kinds.ts";
import { parseFlags } from "../../src/runtime/flags.ts";
import type { FlagSpec, FlagSpecs } from "../../src/runtime/flags.ts";
import { argparseOptions, MSIGHT_CLIS, msightAvailable, msightCommand } from "./msight.ts";

/** MSight flags whose meaning differs here, each with the README text that documents it. */
const KEPT_DIFFERENCES: Record<string, Record<string, string>> = {
  rtsp: { "-g": "`-g` on the RTSP node is the GPU index" },
};

/** Our required flags, so that one MSight flag at a time can be parsed. */
const REQUIRED: Record<keyof typeof MSIGHT_CLIS, string[]> = {
  rtsp: ["-n", "x", "-pt", "t", "-sn", "s", "-u", "rtsp://127.0.0.1:8554/x"],
  aggregator: ["-n", "x", "-st", "t", "-pt", "v", "--buffer-size", "10", "--overlap-size", "0"],
  dumper: ["-n", "x", "-st", "t", "-sd", "/tmp/x"],
  pusher: ["-n", "x", "-st", "t", "--bucket-name", "b"],
};

function sampleValue(spec: FlagSpec): string {
  if (spec.choices) return spec.choices[0];
  if (spec.type === "int" || spec.type === "number") return String(Math.max(1, spec.min ?? 1));
  return "value";
}

function find(specs: FlagSpecs, name: string): [string, FlagSpec] | undefined {
  const bare = name.replace(/^--?/, "");
  return Object.entries(specs).find(([, s]) => (name.startsWith("--") ? s.long === bare : s.short === bare));
}

const skip = await msightAvailable();

Deno.test({
  name:
    "MSight flags: every flag of MSight's four CLIs (from its own --help) is accepted with the same meaning",
  ignore: skip !== null,
  fn: async () => {
    const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
    const differences = readme.slice(readme.indexOf("## Differences from MSight"));
    for (const [kind, module] of Object.entries(MSIGHT_CLIS) as [keyof typeof MSIGHT_CLIS, string][]) {
      const r = await msightCommand(module, ["--help"], {}).output();
      const help = new TextDecoder().decode(r.stdout);
      assert.ok(r.success, `${module} --help: ${new TextDecoder().decode(r.stderr)}`);
      const options = argparseOptions(help).filter((o) => !o.names.includes("--help"));
      assert.ok(options.length >= 10, `${module}: ${options.length} options read from --help`);
      const specs = NODE_KINDS[kind].specs;
      for (const opt of options) {
        for (const name of opt.names) {
          const kept = KEPT_DIFFERENCES[kind]?.[name];
          if (kept) {
            assert.ok(differences.includes(kept), `README's Differences must say: ${kept}`);
            continue;
          }
          const hit = find(specs, name);
          assert.ok(hit, `${kind}: MSight's ${name} is not accepted by ours`);
          const [, spec] = hit;
          // Same arity: a value-taking flag here too, a switch a switch.
          assert.equal(spec.type !== "bool", opt.takesValue, `${kind} ${name}: takes a value in MSight?`);
          // The same option, under every spelling MSight gives it.
          for (const other of opt.names) {
            if (KEPT_DIFFERENCES[kind]?.[other]) continue;
            assert.equal(find(specs, other)?.[0], hit[0], `${kind}: ${name} and ${other} are one option`);
          }
          const argv = [...REQUIRED[kind], name, ...(opt.takesValue ? [sampleValue(spec)] : [])];
          parseFlags(specs, argv, kind); // throws on a flag we refuse
        }
      }
    }
  },
});

Deno.test("MSight flags: --overlap-size equal to --buffer-size is refused with the reason", () => {
  const problem = NODE_KINDS.aggregator.check({ bufferSize: 50, overlapSize: 50 });
  assert.ok(problem);
  assert.match(problem.message, /MSight then publishes a video of the last 51 frames for every new frame/);
  assert.equal(NODE_KINDS.aggregator.check({ bufferSize: 50, overlapSize: 49 }), undefined);
});
