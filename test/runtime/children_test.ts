/**
 * The owner of child processes: each child leads its own process group and session; at the end, SIGTERM then
 * SIGKILL for one that ignores SIGTERM, so none outlives its program.
 */
import assert from "node:assert/strict";
import { liveChildren, outputChild, spawnChild, stopAllChildren } from "../../src/runtime/children.ts";

function statFields(pid: number): string[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

Deno.test("children: a child leads its own group and session; stopAllChildren ends even one ignoring SIGTERM", async () => {
  const polite = spawnChild("sleep", { args: ["30"] });
  // Ignores SIGTERM: only the SIGKILL after the grace period ends it.
  const stubborn = spawnChild("bash", { args: ["-c", "trap '' TERM; while :; do sleep 0.1; done"] });
  const [, , pgrp, session] = statFields(polite.pid);
  assert.equal(Number(pgrp), polite.pid, "own process group");
  assert.equal(Number(session), polite.pid, "own session");
  assert.notEqual(Number(statFields(Deno.pid)[2]), polite.pid);
  assert.equal(liveChildren(), 2);
  await new Promise((r) => setTimeout(r, 200)); // let bash install its trap
  const t0 = Date.now();
  assert.equal(await stopAllChildren(500), 2);
  assert.ok(Date.now() - t0 >= 450, "waited the grace period for the stubborn one");
  assert.equal((await polite.status).signal, "SIGTERM");
  assert.equal((await stubborn.status).signal, "SIGKILL");
  // The whole group went: bash's own child too (a zombie awaiting its reaper counts as gone).
  const groupLeft = async () => {
    const ps = await new Deno.Command("ps", {
      args: ["-o", "pid=,stat=", "-g", String(stubborn.pid)],
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(ps.stdout).split("\n").filter((l) => l.trim() && !/ Z/.test(l));
  };
  const deadline = Date.now() + 5000;
  while ((await groupLeft()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await groupLeft(), []);
  assert.equal(liveChildren(), 0);
  assert.equal(await stopAllChildren(), 0);
});

Deno.test("children: outputChild collects the output of a short probe, owned the same way", async () => {
  const out = await outputChild("bash", { args: ["-c", "ps -o pgid= -p $$; echo err >&2"] });
  assert.ok(out.success);
  assert.notEqual(Number(new TextDecoder().decode(out.stdout).trim()), Number(statFields(Deno.pid)[2]));
  assert.equal(new TextDecoder().decode(out.stderr), "err\n");
  assert.equal(liveChildren(), 0);
});
