/**
 * The shutdown-signal rule: the first signal stops, one within the window is the same signal delivered twice, a later
 * one exits at once. The rule alone on a fake clock, then in a real process receiving real signals.
 */
import assert from "node:assert/strict";
import { REPEAT_WINDOW_MS, signalExitCode, SignalGate } from "../../src/runtime/signals.ts";
import { DENO, startProcess } from "../helpers/process.ts";

Deno.test("signals: first stops, a repeat inside the window is a duplicate, one after it exits now", () => {
  const gate = new SignalGate(1000);
  assert.equal(gate.stopping, false);
  assert.equal(gate.receive(5000), "stop");
  assert.equal(gate.stopping, true);
  assert.equal(gate.receive(5002), "duplicate");
  assert.equal(gate.receive(5999), "duplicate");
  assert.equal(gate.receive(6000), "repeat");
  assert.equal(gate.receive(9000), "repeat");
  assert.equal(REPEAT_WINDOW_MS, 1000);
  assert.deepEqual(["SIGHUP", "SIGINT", "SIGTERM"].map((s) => signalExitCode(s as Deno.Signal)), [
    129,
    130,
    143,
  ]);
});

Deno.test("signals: a real process counts two signals 0.1 s apart as one, and exits on one 1.2 s later", async () => {
  const code = `
    import { onShutdownSignals, signalExitCode } from "./src/runtime/signals.ts";
    onShutdownSignals({
      onStop: (s) => console.log("stop " + s),
      onDuplicate: (s) => console.log("duplicate " + s),
      onRepeat: (s) => (console.log("repeat " + s), Deno.exit(signalExitCode(s))),
    });
    console.log("ready");
    setTimeout(() => {}, 30_000);
  `;
  const p = startProcess(DENO, ["eval", code], {});
  try {
    await p.waitForLine(/^ready$/, 30_000);
    p.kill("SIGTERM");
    await p.waitForLine(/^stop SIGTERM$/);
    await new Promise((r) => setTimeout(r, 100));
    p.kill("SIGINT");
    await p.waitForLine(/^duplicate SIGINT$/);
    await new Promise((r) => setTimeout(r, REPEAT_WINDOW_MS + 200));
    p.kill("SIGTERM");
    assert.equal(await p.exit, 143);
    assert.deepEqual(p.stdout, ["ready", "stop SIGTERM", "duplicate SIGINT", "repeat SIGTERM"]);
  } finally {
    await p.stop();
  }
});
