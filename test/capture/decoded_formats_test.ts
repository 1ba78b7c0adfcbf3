/**
 * The RTSP node's real filter chain fed each pixel format a decoder may hand over, on the CPU: a CUDA decoder's
 * output is emulated by a `format=` filter in front of the chain (`format=nv12` gives, byte for byte, the JPEGs the
 * H200 gave with `-hwaccel cuda`), and its JPEGs and BGR frames are compared with those of the CPU path's chain fed
 * what the CPU decoder hands over for the same camera. Input: real camera frames (the Mcity fixture) as H.264.
 */
import assert from "node:assert/strict";
import { buildFfmpegArgs, decodedFormatFilter } from "../../src/capture/ffmpeg_args.ts";
import type { FrameFormat } from "../../src/codec/frame.ts";
import { FIXTURE_DIR, run } from "../helpers/media.ts";

const FRAMES = 5;

/** An H.264 clip of real frames, limited-range yuv420p as cameras send. */
async function makeClip(dir: string): Promise<string> {
  const clip = `${dir}/camera.mp4`;
  await run("ffmpeg", [
    ...["-hide_banner", "-v", "error", "-framerate", "10", "-i", `${FIXTURE_DIR}frames/%04d.jpg`],
    ...["-frames:v", String(FRAMES), "-vf", "scale=out_range=tv,format=yuv420p", "-c:v", "libx264"],
    ...["-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", clip],
  ]);
  return clip;
}

interface Path {
  format: FrameFormat;
  /** The camera sends limited-range 8-bit 4:2:0, so the range table is used for full-size JPEG. */
  limited: boolean;
  cuda: boolean;
  /** The chain as before this fix: a CUDA session's chain was the CPU one. */
  old?: boolean;
}

/** The node's `-vf` chain and output options for a session (its input options are the RTSP ones, left out). */
function nodeChain(p: Path): { vf: string; output: string[] } {
  const args = buildFfmpegArgs({
    url: "rtsp://cam/live",
    transport: "tcp",
    timeoutS: 5,
    format: p.format,
    limitedYuv420: p.limited,
    cudaDevice: p.cuda && !p.old ? 0 : undefined,
  });
  const i = args.indexOf("-vf");
  return { vf: args[i + 1], output: args.slice(i + 2) };
}

/** Runs the chain on the clip, `decoded` (a filter) standing for the decoder's output. */
async function render(clip: string, decoded: string, p: Path): Promise<Uint8Array> {
  const { vf, output } = nodeChain(p);
  // The chain prints its frame reports on stderr (as in the node); run() keeps stdout only.
  return await run("ffmpeg", [
    "-hide_banner",
    "-nostdin",
    "-v",
    "error",
    "-i",
    clip,
    "-vf",
    `${decoded},${vf}`,
    ...output,
  ]);
}

async function jpegsToRgb(jpegs: Uint8Array): Promise<Uint8Array> {
  return await run(
    "ffmpeg",
    ["-hide_banner", "-v", "error", "-f", "image2pipe", "-c:v", "mjpeg", "-i", "pipe:0", "-f", "rawvideo"]
      .concat(["-pix_fmt", "rgb24", "pipe:1"]),
    jpegs,
  );
}

function psnr(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length, "same frame count and size");
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10(255 ** 2 / (se / a.length));
}

function mean(a: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s / a.length;
}

/** What each decoder hands over for one kind of camera. */
interface Camera {
  name: string;
  limited: boolean;
  /** What the CPU decoder hands over (a filter on the 8-bit limited clip). */
  cpu: string;
  /** What CUDA's decoder hands over for the same stream. */
  gpu: string;
  /** Byte-identical BGR frames expected (else PSNR at least 45 dB). */
  bgrIdentical: boolean;
}

const CAMERAS: Camera[] = [
  // The common camera: NVDEC gives NV12.
  { name: "8-bit 4:2:0 limited (NV12)", limited: true, cpu: "null", gpu: "format=nv12", bgrIdentical: true },
  // A 10-bit camera: the CPU decoder gives yuv420p10le, NVDEC P010.
  {
    name: "10-bit 4:2:0 (P010)",
    limited: false,
    cpu: "format=yuv420p10le",
    gpu: "format=yuv420p10le,format=p010le",
    bgrIdentical: true,
  },
  // A full-range camera: the CPU decoder gives yuvj420p, NVDEC NV12 flagged full range. swscale's NV12 and yuvj420p
  // paths to BGR round differently (max 3 levels).
  {
    name: "8-bit 4:2:0 full range (yuvj420p, NV12 pc)",
    limited: false,
    cpu: "scale=out_range=pc,format=yuvj420p",
    gpu: "scale=out_range=pc,format=yuvj420p,format=nv12",
    bgrIdentical: false,
  },
  // 4:2:2: ffmpeg 5.1's NVDEC cannot decode it and hands over the software decoder's yuv422p.
  { name: "8-bit 4:2:2", limited: false, cpu: "format=yuv422p", gpu: "format=yuv422p", bgrIdentical: true },
  // 4:4:4: NVDEC hands over yuv444p.
  { name: "8-bit 4:4:4", limited: false, cpu: "format=yuv444p", gpu: "format=yuv444p", bgrIdentical: true },
];

Deno.test("decoded formats: with CUDA the chain first converts to the CPU decoder's format (yuv420p before the range table)", () => {
  const { vf } = nodeChain({ format: "jpeg", limited: true, cuda: true });
  assert.match(vf, /,format=yuv420p,lutyuv=/);
  assert.ok(
    !nodeChain({ format: "jpeg", limited: true, cuda: false }).vf.includes("format="),
    "CPU chain unchanged",
  );
  assert.match(nodeChain({ format: "bgr24", limited: false, cuda: true }).vf, /,format=yuv420p\|yuvj420p\|/);
  assert.equal(decodedFormatFilter(true), "format=yuv420p");
});

Deno.test("decoded formats: NV12 through the old chain expands the range twice; the new chain's JPEGs are the CPU path's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "msight-fmt-" });
  try {
    const clip = await makeClip(dir);
    const jpeg = { format: "jpeg" as const, limited: true };
    const cpu = await render(clip, "null", { ...jpeg, cuda: false });
    const gpu = await render(clip, "format=nv12", { ...jpeg, cuda: true });
    const old = await render(clip, "format=nv12", { ...jpeg, cuda: true, old: true });
    assert.deepEqual(gpu, cpu, "NV12 through the new chain: byte-identical JPEGs");
    assert.notDeepEqual(old, cpu, "NV12 through the old chain differs");
    const [cpuRgb, oldRgb] = await Promise.all([jpegsToRgb(cpu), jpegsToRgb(old)]);
    const p = psnr(cpuRgb, oldRgb);
    // Measured here: 29 dB and brighter (mean RGB 113 vs 109); on the H200, 29.7 dB against the camera.
    assert.ok(p < 32, `old chain vs CPU: ${p.toFixed(1)} dB`);
    console.log(
      `old chain, NV12: ${p.toFixed(1)} dB against the CPU path, mean RGB ${mean(oldRgb).toFixed(1)} vs ${
        mean(cpuRgb).toFixed(1)
      }`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("decoded formats: each format a decoder hands over gives the CPU path's JPEGs and BGR frames", async () => {
  const dir = await Deno.makeTempDir({ prefix: "msight-fmt-" });
  try {
    const clip = await makeClip(dir);
    for (const cam of CAMERAS) {
      for (const format of ["jpeg", "bgr24"] as const) {
        const p = { format, limited: cam.limited };
        const cpu = await render(clip, cam.cpu, { ...p, cuda: false });
        const gpu = await render(clip, cam.gpu, { ...p, cuda: true });
        assert.ok(cpu.length > 0, `${cam.name} ${format}: output`);
        if (format === "jpeg" || cam.bgrIdentical) {
          assert.ok(
            cpu.length === gpu.length && cpu.every((b, i) => b === gpu[i]),
            `${cam.name} ${format}: not byte-identical (${
              cpu.length === gpu.length
                ? psnr(
                  format === "jpeg" ? await jpegsToRgb(cpu) : cpu,
                  format === "jpeg" ? await jpegsToRgb(gpu) : gpu,
                )
                  .toFixed(1) + " dB"
                : "sizes differ"
            })`,
          );
        } else {
          const d = psnr(cpu, gpu);
          assert.ok(d >= 45, `${cam.name} ${format}: ${d.toFixed(1)} dB`);
          console.log(`${cam.name} ${format}: ${d.toFixed(1)} dB against the CPU path`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
