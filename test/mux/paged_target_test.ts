import assert from "node:assert/strict";
import { PagedTarget } from "../../src/mux/paged_target.ts";
import { byteLengthOf, joinBytes } from "../../src/runtime/bytes.ts";

/** The same writes on a plain growing array: what the pages must hold. */
function reference(writes: [number[], number][]): Uint8Array {
  const out: number[] = [];
  for (const [data, pos] of writes) {
    while (out.length < pos) out.push(0);
    data.forEach((b, i) => (out[pos + i] = b));
  }
  return new Uint8Array(out);
}

Deno.test("PagedTarget: appends, overwrites across page edges and gaps read back as a flat buffer would", () => {
  const writes: [number[], number][] = [
    [[1, 2, 3, 4, 5, 6, 7], 0], // spans two pages of 4
    [[8, 9], 7],
    [[20, 21, 22], 3], // back over a page edge, as the muxer writes its table into reserved room
    [[30], 14], // past the end: 10..13 are zeros
    [[], 2],
  ];
  for (const pageSize of [1, 3, 4, 64]) {
    const t = new PagedTarget(pageSize);
    for (const [data, pos] of writes) t.write(new Uint8Array(data), pos);
    const expected = reference(writes);
    assert.equal(t.byteLength, expected.length, `page ${pageSize}`);
    const pieces = t.pieces();
    assert.equal(byteLengthOf(pieces), expected.length);
    assert.deepEqual(joinBytes(pieces), expected, `page ${pageSize}`);
    assert.ok(pieces.slice(0, -1).every((p) => p.byteLength === pageSize), "whole pages, the last one cut");
  }
  assert.deepEqual(new PagedTarget().pieces(), []);
  assert.throws(() => new PagedTarget(4).write(new Uint8Array(1), -1), /write position -1 is invalid/);
  assert.throws(() => new PagedTarget(0), /page size 0 is invalid/);
});

Deno.test("PagedTarget: pieces are views of the pages, not copies", () => {
  const t = new PagedTarget(4);
  t.write(new Uint8Array([1, 2, 3, 4, 5]), 0);
  const [first] = t.pieces();
  t.write(new Uint8Array([9]), 0);
  assert.equal(first[0], 9);
});

Deno.test("joinBytes: one piece is returned as it is; several are copied in order", () => {
  const a = new Uint8Array([1, 2]);
  assert.equal(joinBytes([a]), a);
  assert.deepEqual(joinBytes([a, new Uint8Array(), new Uint8Array([3])]), new Uint8Array([1, 2, 3]));
  assert.deepEqual(joinBytes([]), new Uint8Array());
});
