/**
 * Shared pieces of the media tests: the real camera frames with their capture times, ffprobe, and an MP4 box scan.
 *
 * @example
 * ```ts
 * import { loadFrames, probe } from "./media_test_helpers.ts";
 * const frames = await loadFrames(10);
 * ```
 * @module
 */

import {
  type ChunkMetadata,
  createEncoder,
  type EncodedChunk,
  type EncoderConfig,
  type EncoderFallback,
  type EncoderKind,
  type FrameEncoder,
} from "../src/media/encoder.ts";
import type { InputFrame } from "../src/media/frame.ts";

export const FIXTURE_DIR = new URL("./fixtures/mcity-gs-ne/", import.meta.url).pathname;

/** A fixture frame: its JPEG bytes and capture time in µs (local time read as UTC: only differences matter). */
export interface FixtureFrame {
  jpeg: Uint8Array;
  timestampUs: number;
}

/** Parses `2023-10-13T16:46:53.100580` to µs without losing the microseconds (Date keeps only ms). */
export function parseCaptureTimeUs(text: string): number {
  const m = /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m) throw new Error(`bad capture time ${text}`);
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return ms * 1000 + Number((m[7] ?? "").padEnd(6, "0"));
}

/** The first `n` fixture frames (1280×960 JPEGs) with their real, irregular capture times. */
export async function loadFrames(n: number, offset = 0): Promise<FixtureFrame[]> {
  const rows = (await Deno.readTextFile(`${FIXTURE_DIR}timestamps.csv`)).trim().split("\n").slice(1);
  return await Promise.all(
    rows.slice(offset, offset + n).map(async (row) => {
      const [, file, time] = row.split(",");
      return { jpeg: await Deno.readFile(`${FIXTURE_DIR}${file}`), timestampUs: parseCaptureTimeUs(time) };
    }),
  );
}

/** Wraps fixture frames as encoder input. */
export function jpegInputs(frames: FixtureFrame[], width = 1280, height = 960): InputFrame[] {
  return frames.map((f) => ({ data: f.jpeg, format: "jpeg", width, height, timestampUs: f.timestampUs }));
}

/** Runs a command, returning stdout; throws with stderr on failure. */
export async function run(cmd: string, args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** What ffprobe says about a file's single video stream and its packets. */
export interface ProbeResult {
  stream: {
    codec_name: string;
    codec_tag_string: string;
    pix_fmt: string;
    width: number;
    height: number;
    nb_frames: string;
    duration: string;
  };
  packets: { pts_time: string; duration_time: string; flags: string }[];
}

/** ffprobe -show_streams -show_packets of an MP4 given as bytes (written to a temp file). */
export async function probe(mp4: Uint8Array): Promise<ProbeResult> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const json = JSON.parse(new TextDecoder().decode(
      await run("ffprobe", ["-v", "error", "-show_streams", "-show_packets", "-of", "json", path]),
    ));
    return { stream: json.streams[0], packets: json.packets };
  } finally {
    await Deno.remove(path);
  }
}

/** Decodes the whole file with ffmpeg; returns the number of frames decoded (throws on any decode error). */
export async function decodeFrameCount(mp4: Uint8Array): Promise<number> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const out = new TextDecoder().decode(
      await run("ffmpeg", ["-v", "error", "-xerror", "-i", path, "-f", "framecrc", "-"]),
    );
    return out.split("\n").filter((l) => /^0,/.test(l)).length;
  } finally {
    await Deno.remove(path);
  }
}

/** The top-level box types of an MP4, in file order. */
export function topLevelBoxes(mp4: Uint8Array): string[] {
  const view = new DataView(mp4.buffer, mp4.byteOffset, mp4.byteLength);
  const types: string[] = [];
  let off = 0;
  while (off + 8 <= mp4.byteLength) {
    let size = view.getUint32(off);
    const type = new TextDecoder().decode(mp4.subarray(off + 4, off + 8));
    if (size === 1) size = Number(view.getBigUint64(off + 8));
    if (size === 0) size = mp4.byteLength - off;
    if (size < 8) throw new Error(`bad box size ${size} at ${off}`);
    types.push(type);
    off += size;
  }
  if (off !== mp4.byteLength) throw new Error(`boxes end at ${off}, file is ${mp4.byteLength} bytes`);
  return types;
}

/** An encoder run collecting its outputs. */
export interface Collected {
  chunks: EncodedChunk[];
  metas: (ChunkMetadata | undefined)[];
  errors: Error[];
  fallbacks: EncoderFallback[];
  encoder: FrameEncoder;
}

/** Makes an encoder of `kind` whose outputs are collected, configured with `config`. */
export function collectingEncoder(kind: EncoderKind, config: EncoderConfig, ffmpegPath?: string): Collected {
  const c: Omit<Collected, "encoder"> = { chunks: [], metas: [], errors: [], fallbacks: [] };
  const encoder = createEncoder(kind, {
    output: (chunk, meta) => {
      c.chunks.push(chunk);
      c.metas.push(meta);
    },
    error: (e) => c.errors.push(e),
    fallback: (f) => c.fallbacks.push(f),
  }, { ffmpegPath });
  encoder.configure(config);
  return { ...c, encoder };
}

/** Converts a fixture JPEG to another size/format with the system ffmpeg. */
export async function convertFrame(
  jpeg: Uint8Array,
  width: number,
  height: number,
  format: "mjpeg" | "bgr24",
): Promise<Uint8Array> {
  const codecArgs = format === "mjpeg"
    ? ["-c:v", "mjpeg", "-f", "image2pipe"]
    : ["-pix_fmt", "bgr24", "-f", "rawvideo"];
  return await run("ffmpeg", [
    "-v",
    "error",
    "-f",
    "image2pipe",
    "-c:v",
    "mjpeg",
    "-i",
    "pipe:0",
    "-vf",
    `scale=${width}:${height}`,
    "-frames:v",
    "1",
    ...codecArgs,
    "pipe:1",
  ], jpeg);
}
