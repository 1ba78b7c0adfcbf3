// readReused against real pipes: every byte once and in order whatever the chunking, and an early exit that
// cancels the pipe instead of leaving the writer blocked.
import assert from "node:assert/strict";
import { readReused } from "../../src/runtime/pipe_reader.ts";

Deno.test("readReused: a 1 MiB file through cat arrives whole, views copied per chunk", async () => {
  const data = new Uint8Array(1 << 20).map((_, i) => (i * 7919) % 251);
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, data);
    const child = new Deno.Command("cat", { args: [path], stdout: "piped" }).spawn();
    const copies: Uint8Array[] = [];
    for await (const chunk of readReused(child.stdout, 4096)) {
      assert.ok(chunk.byteLength > 0 && chunk.byteLength <= 4096);
      copies.push(chunk.slice());
    }
    assert.ok((await child.status).success);
    const joined = new Uint8Array(copies.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of copies) joined.set(c, at), at += c.length;
    assert.deepEqual(joined, data);
    assert.ok(copies.length >= 256, "read in chunks of at most the buffer size");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("readReused: leaving the loop early cancels the pipe, so the writer ends", async () => {
  const child = new Deno.Command("yes", { stdout: "piped", stderr: "null" }).spawn();
  let n = 0;
  for await (const _ of readReused(child.stdout)) if (++n === 3) break;
  const status = await child.status; // would hang if the pipe were left open and full
  assert.equal(status.success, false, "yes ended by a broken pipe");
});
