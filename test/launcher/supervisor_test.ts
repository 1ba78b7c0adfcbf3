/**
 * The Supervisor under the pipeline launcher, with real processes: lines prefixed with the full name, a process
 * that keeps exiting restarted with exponential backoff up to its cap, `restart: false` honoured, detached
 * children in their own session, and nothing running after stop.
 */
import assert from "node:assert/strict";
import { Supervisor } from "../../src/launcher/supervisor.ts";
import { waitFor } from "../helpers/net.ts";

Deno.test("a crashing process is restarted with exponential backoff up to the cap; stop ends it", async () => {
  const lines: string[] = [];
  const sup = new Supervisor({ log: (l) => lines.push(l), backoffS: [0.1, 0.4], prefixWidth: 16 });
  try {
    sup.add({ name: "crashy_camera_01", cmd: "sh", args: ["-c", "echo hello; exit 3"] });
    sup.add({ name: "once", cmd: "sh", args: ["-c", "exit 0"], restart: false });
    await waitFor(() => lines.some((l) => l.includes("(restart 5)")), 10_000, "five restarts");
  } finally {
    await sup.stop(2);
  }
  const delays = lines.map((l) => /^crashy_camera_01 \| restarting in (\d+\.\d) s \(restart (\d)\)$/.exec(l))
    .filter((m) => m !== null).map((m) => Number(m![1]));
  // 0.1, 0.2, 0.4, 0.4, 0.4 s, each ±20 % jitter (printed to 0.1 s).
  const expected = [0.1, 0.2, 0.4, 0.4, 0.4];
  delays.slice(0, 5).forEach((d, i) =>
    assert.ok(Math.abs(d - expected[i]) <= expected[i] * 0.2 + 0.05, `${delays}`)
  );
  assert.ok(lines.includes("crashy_camera_01 | hello"), lines.join("\n"));
  assert.ok(lines.includes("crashy_camera_01 | exited with code 3"));
  assert.ok(lines.includes("once             | exited with code 0"));
  assert.ok(
    !lines.some((l) => l.startsWith("once") && l.includes("restarting")),
    "restart: false is honoured",
  );
  const n = lines.length;
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(lines.length, n, "nothing restarts after stop");
  assert.deepEqual(sup.running, []);
});

Deno.test("a detached child leads its own session, so a terminal's Ctrl-C does not reach it", async () => {
  const sup = new Supervisor({ log: () => {} });
  try {
    sup.add({ name: "sleeper", cmd: "sleep", args: ["30"], detached: true });
    let pid = 0;
    await waitFor(
      async () => {
        const out = await new Deno.Command("pgrep", {
          args: ["-P", String(Deno.pid), "-x", "sleep"],
          stdout: "piped",
        })
          .output();
        pid = Number(new TextDecoder().decode(out.stdout).trim().split("\n")[0]);
        return pid > 0;
      },
      5_000,
      "the child",
    );
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const [pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(2, 4).map(Number);
    assert.equal(pgrp, pid);
    assert.equal(session, pid);
  } finally {
    await sup.stop(2);
  }
  assert.deepEqual(sup.running, []);
});
