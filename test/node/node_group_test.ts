/**
 * `--next` between nodes' flags (src/node/node_group.ts): how a command line splits, and what two nodes of one
 * process may not share. The real process is in test/nodes/rtsp_test.ts.
 */
import assert from "node:assert/strict";
import { checkGroup, GROUP_SEPARATOR, splitGroup } from "../../src/node/node_group.ts";
import { UsageError } from "../../src/runtime/errors.ts";

Deno.test("node group: a command line splits at each --next, one part without", () => {
  assert.equal(GROUP_SEPARATOR, "--next");
  assert.deepEqual(splitGroup(["-n", "a", "-u", "rtsp://h/1"]), [["-n", "a", "-u", "rtsp://h/1"]]);
  assert.deepEqual(splitGroup([]), [[]]);
  assert.deepEqual(
    splitGroup(["-n", "a", "--next", "-n", "b", "--next", "-n", "c"]),
    [["-n", "a"], ["-n", "b"], ["-n", "c"]],
  );
  for (
    const [argv, part] of [
      [["--next", "-n", "b"], 1],
      [["-n", "a", "--next", "--next", "-n", "c"], 2],
      [["-n", "a", "--next"], 2],
    ] as const
  ) {
    assert.throws(
      () => splitGroup(argv),
      (e) => e instanceof UsageError && new RegExp(`^node ${part} of \\d has no flags`).test(e.message),
    );
  }
});

Deno.test("node group: names must differ, and metrics ports other than 0", () => {
  checkGroup([{ name: "a", metricsPort: 0 }, { name: "b", metricsPort: 0 }, {
    name: "c",
    metricsPort: 9100,
  }]);
  assert.throws(
    () => checkGroup([{ name: "a", metricsPort: 0 }, { name: "a", metricsPort: 0 }]),
    /^UsageError: two nodes named a in one process/,
  );
  assert.throws(
    () => checkGroup([{ name: "a", metricsPort: 9100 }, { name: "b", metricsPort: 9100 }]),
    /--metrics-port 9100 is given to both a and b/,
  );
});
