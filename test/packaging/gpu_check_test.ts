/**
 * scripts/gpu-check.sh in its quick mode from this checkout (no bundle): real Redis, the stdlib RTSP relay, two RTSP
 * nodes (-g 0, -g -1) and an aggregator through bin/msight-launch. On a machine without a GPU its table must say
 * so in every GPU row, and the rest (frames, CPU, RSS, JPEG equality, the NVENC fallback) must still be measured.
 */
import assert from "node:assert/strict";
import { ROOT } from "../helpers/process.ts";

function hasGpu(): boolean {
  try {
    Deno.statSync("/dev/nvidia0");
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

Deno.test("gpu-check: --here --quick prints the one table, with 'no GPU' rows on a machine without one, and leaves nothing running", async () => {
  const out = await Deno.makeTempDir({ prefix: "msight-gpu-check-" });
  try {
    const r = await new Deno.Command(`${ROOT}scripts/gpu-check.sh`, {
      args: ["--here", "--quick", "--out", out],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout);
    assert.ok(r.success, `exit ${r.code}\n${text}\n${new TextDecoder().decode(r.stderr)}`);
    assert.equal(await Deno.readTextFile(`${out}/gpu-check.txt`), text, "the table is saved");
    const row = (label: string) => {
      const line = text.split("\n").find((l) => l.startsWith(label));
      assert.ok(line, `no row ${label}:\n${text}`);
      return line.slice(line.indexOf("|") + 1).trim();
    };
    // camera | -g 0: frames CPU RSS | -g -1: frames CPU RSS | ratio | decoded on
    const cam = row("A ").split("|").map((c) => c.trim());
    const [gFrames, gMs, gRss] = cam[0].split(/\s+/).map(Number);
    const [cFrames, cMs, cRss] = cam[1].split(/\s+/).map(Number);
    assert.ok(gFrames > 0 && cFrames > 0, text);
    assert.ok(gMs > 0 && cMs > 0 && gRss > 10 && cRss > 10, text);
    const jpeg = row("JPEG equality, camera A").match(/^(\d+) of (\d+) /);
    assert.ok(jpeg && Number(jpeg[2]) > 0, text);
    if (!hasGpu()) {
      assert.match(row("CUDA probe"), /^no GPU: .*libcuda/);
      assert.match(row("NVDEC decode"), /^no GPU/);
      assert.match(row("nvidia-smi decoder use"), /^no GPU/);
      assert.match(cam[3], /CPU \(CUDA unavailable: fell back\)/);
      // Both nodes decode on the CPU here: the JPEGs are the same (but for a frame one node may have dropped).
      assert.ok(Number(jpeg![1]) >= 0.9 * Number(jpeg![2]), text);
      assert.match(
        row("NVENC"),
        /^first segment h264 by ffmpeg:libx264, 20 frames; 1 WARNING line\(s\): h264_nvenc/,
      );
    }
    const left = await new Deno.Command("pgrep", { args: ["-f", out], stdout: "piped" }).output();
    assert.equal(new TextDecoder().decode(left.stdout).trim(), "", "no process of the check left");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
