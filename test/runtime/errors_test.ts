// The one mapping from a thrown value to an exit code, shared by nodes, tools and the launcher.
import assert from "node:assert/strict";
import { errorMessage, exitCodeOf, FatalError, UsageError } from "../../src/runtime/errors.ts";

Deno.test("exitCodeOf: usage 2, fatal its own code, anything else 1", () => {
  assert.equal(exitCodeOf(new UsageError("--fps 0 is invalid")), 2);
  assert.equal(exitCodeOf(new FatalError("cannot write /data")), 1);
  assert.equal(exitCodeOf(new FatalError("no ffmpeg", 3)), 3);
  assert.equal(exitCodeOf(new TypeError("bug")), 1);
  assert.equal(exitCodeOf("a string"), 1);
  assert.equal(errorMessage(new Error("first line\nstack-ish second")), "first line");
});
