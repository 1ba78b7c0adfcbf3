/**
 * Shared pieces of the media tests: the real camera frames with their capture times, ffprobe, and an MP4 box scan.
 *
 * @example
 * ```ts
 * import { loadFrames, probe } from "./media.ts";
 * const frames = await loadFrames(10);
 * ```
 * @module
 */

import { createEncoder } from "../../src/encode/mod.ts";
import type {
  ChunkMetadata,
  EncodedChunk,
  EncoderConfig,
  EncoderFallback,
  EncoderKind,
  FrameEncoder,
} from "../../src/encode/types.ts";
import type { InputFrame } from "../../src/codec/frame.ts";
import type { NalCodec } from "../../src/codec/annexb.ts";

export const FIXTURE_DIR = new URL("../fixtures/mcity-gs-ne/", import.meta.url).pathname;

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
    /** `pc` (full) or `tv` (limited). */
    color_range?: string;
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

/** Boxes whose payload is only child boxes (the path down to the sample table). */
const CONTAINER_BOXES = new Set(["moov", "trak", "mdia", "minf", "stbl"]);

/** The payload of the first box at `path` (e.g. `["moov", "trak", ..., "stsz"]`), or undefined. */
export function findBox(
  mp4: Uint8Array,
  path: string[],
  from = 0,
  to = mp4.byteLength,
): Uint8Array | undefined {
  const view = new DataView(mp4.buffer, mp4.byteOffset, mp4.byteLength);
  let off = from;
  while (off + 8 <= to) {
    let size = view.getUint32(off);
    let header = 8;
    if (size === 1) {
      size = Number(view.getBigUint64(off + 8));
      header = 16;
    }
    if (size === 0) size = to - off;
    const type = new TextDecoder().decode(mp4.subarray(off + 4, off + 8));
    if (type === path[0]) {
      if (path.length === 1) return mp4.subarray(off + header, off + size);
      if (!CONTAINER_BOXES.has(type)) throw new Error(`${type} is not a container box`);
      return findBox(mp4, path.slice(1), off + header, off + size);
    }
    off += size;
  }
  return undefined;
}

/** The video sample entry (`avc1`/`hvc1`...): its 4-character type and the configuration box inside it. */
export function videoSampleEntry(
  mp4: Uint8Array,
): { type: string; config: { type: string; payload: Uint8Array } } {
  const stsd = findBox(mp4, ["moov", "trak", "mdia", "minf", "stbl", "stsd"]);
  if (!stsd) throw new Error("no stsd box");
  // stsd: version/flags and entry_count, then the first entry; a VisualSampleEntry has 78 bytes before its boxes.
  const entry = stsd.subarray(8);
  const entrySize = new DataView(entry.buffer, entry.byteOffset).getUint32(0);
  const type = new TextDecoder().decode(entry.subarray(4, 8));
  const children = entry.subarray(8 + 78, entrySize);
  const configType = new TextDecoder().decode(children.subarray(4, 8));
  const payload = findBox(children, [configType]);
  if (!payload) throw new Error("no configuration box");
  return { type, config: { type: configType, payload } };
}

/** The bytes of sample `index` (0-based), located through stsz and stco/co64 (one sample per chunk not assumed). */
export function sampleBytes(mp4: Uint8Array, index: number): Uint8Array {
  const stbl = ["moov", "trak", "mdia", "minf", "stbl"];
  const stsz = findBox(mp4, [...stbl, "stsz"]);
  const stsc = findBox(mp4, [...stbl, "stsc"]);
  const stco = findBox(mp4, [...stbl, "stco"]) ?? findBox(mp4, [...stbl, "co64"]);
  if (!stsz || !stsc || !stco) throw new Error("incomplete sample table");
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fixed = dv(stsz).getUint32(4);
  const sizeOf = (i: number) => fixed || dv(stsz).getUint32(12 + 4 * i);
  const wide = findBox(mp4, [...stbl, "co64"]) !== undefined;
  const chunkOffset = (c: number) =>
    wide ? Number(dv(stco).getBigUint64(8 + 8 * c)) : dv(stco).getUint32(8 + 4 * c);
  // stsc runs: (first_chunk, samples_per_chunk); walk the chunks until the sample is reached.
  const runs = Array.from({ length: dv(stsc).getUint32(4) }, (_, r) => ({
    first: dv(stsc).getUint32(8 + 12 * r) - 1,
    perChunk: dv(stsc).getUint32(12 + 12 * r),
  }));
  const chunks = dv(stco).getUint32(4);
  let sample = 0;
  for (let c = 0; c < chunks; c++) {
    const run = runs.findLast((r) => r.first <= c)!;
    let off = chunkOffset(c);
    for (let k = 0; k < run.perChunk; k++, sample++) {
      if (sample === index) return mp4.subarray(off, off + sizeOf(sample));
      off += sizeOf(sample);
    }
  }
  throw new Error(`no sample ${index}`);
}

/** The NAL units of a sample made of 4-byte length-prefixed NAL units; throws when the lengths do not add up. */
export function lengthPrefixedNals(sample: Uint8Array): Uint8Array[] {
  const view = new DataView(sample.buffer, sample.byteOffset, sample.byteLength);
  const nals: Uint8Array[] = [];
  let off = 0;
  while (off < sample.byteLength) {
    const n = view.getUint32(off);
    if (n === 0 || off + 4 + n > sample.byteLength) throw new Error(`bad NAL length ${n} at ${off}`);
    nals.push(sample.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  return nals;
}

/** An HEVCDecoderConfigurationRecord, field by field (ISO/IEC 14496-15 8.3.3.1). */
export interface HvccFields {
  configurationVersion: number;
  generalProfileSpace: number;
  generalTierFlag: number;
  generalProfileIdc: number;
  generalProfileCompatibilityFlags: number;
  generalConstraintIndicatorFlags: number[];
  generalLevelIdc: number;
  minSpatialSegmentationIdc: number;
  parallelismType: number;
  chromaFormatIdc: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  avgFrameRate: number;
  constantFrameRate: number;
  numTemporalLayers: number;
  temporalIdNested: number;
  lengthSizeMinusOne: number;
  arrays: { arrayCompleteness: number; nalUnitType: number; nalUnits: number[][] }[];
}

/** Parses an `hvcC` payload. */
export function parseHvcc(b: Uint8Array): HvccFields {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const arrays: HvccFields["arrays"] = [];
  let off = 23;
  for (let a = 0; a < b[22]; a++) {
    const nalUnits: number[][] = [];
    const count = v.getUint16(off + 1);
    let p = off + 3;
    for (let i = 0; i < count; i++) {
      const len = v.getUint16(p);
      nalUnits.push(Array.from(b.subarray(p + 2, p + 2 + len)));
      p += 2 + len;
    }
    arrays.push({ arrayCompleteness: b[off] >> 7, nalUnitType: b[off] & 0x3f, nalUnits });
    off = p;
  }
  if (off !== b.byteLength) throw new Error(`hvcC has ${b.byteLength - off} trailing bytes`);
  return {
    configurationVersion: b[0],
    generalProfileSpace: b[1] >> 6,
    generalTierFlag: (b[1] >> 5) & 1,
    generalProfileIdc: b[1] & 0x1f,
    generalProfileCompatibilityFlags: v.getUint32(2),
    generalConstraintIndicatorFlags: Array.from(b.subarray(6, 12)),
    generalLevelIdc: b[12],
    minSpatialSegmentationIdc: v.getUint16(13) & 0x0fff,
    parallelismType: b[15] & 3,
    chromaFormatIdc: b[16] & 3,
    bitDepthLumaMinus8: b[17] & 7,
    bitDepthChromaMinus8: b[18] & 7,
    avgFrameRate: v.getUint16(19),
    constantFrameRate: b[21] >> 6,
    numTemporalLayers: (b[21] >> 3) & 7,
    temporalIdNested: (b[21] >> 2) & 1,
    lengthSizeMinusOne: b[21] & 3,
    arrays,
  };
}

/** An AVCDecoderConfigurationRecord, field by field (ISO/IEC 14496-15 5.3.3.1). */
export interface AvccFields {
  configurationVersion: number;
  profile: number;
  compatibility: number;
  level: number;
  lengthSizeMinusOne: number;
  sps: number[][];
  pps: number[][];
  /** chroma_format_idc, bit depths and SPS extension count, for High profiles. */
  extension?: {
    chromaFormat: number;
    bitDepthLumaMinus8: number;
    bitDepthChromaMinus8: number;
    spsExt: number;
  };
}

/** Parses an `avcC` payload. */
export function parseAvcc(b: Uint8Array): AvccFields {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 5;
  const list = (count: number) =>
    Array.from({ length: count }, () => {
      const len = v.getUint16(off);
      const nal = Array.from(b.subarray(off + 2, off + 2 + len));
      off += 2 + len;
      return nal;
    });
  const sps = list(b[off++] & 0x1f);
  const pps = list(b[off++]);
  const fields: AvccFields = {
    configurationVersion: b[0],
    profile: b[1],
    compatibility: b[2],
    level: b[3],
    lengthSizeMinusOne: b[4] & 3,
    sps,
    pps,
  };
  if (off < b.byteLength) {
    fields.extension = {
      chromaFormat: b[off] & 3,
      bitDepthLumaMinus8: b[off + 1] & 7,
      bitDepthChromaMinus8: b[off + 2] & 7,
      spsExt: b[off + 3],
    };
    off += 4;
  }
  if (off !== b.byteLength) throw new Error(`avcC has ${b.byteLength - off} trailing bytes`);
  return fields;
}

/** Parses an `avcC` or `hvcC` payload. */
export function parseRecord(codec: NalCodec, payload: Uint8Array): AvccFields | HvccFields {
  return codec === "avc" ? parseAvcc(payload) : parseHvcc(payload);
}

/**
 * The fields of the avcC/hvcC record that ffmpeg itself writes for an Annex B stream (`-c copy`, tagged hvc1), the
 * reference our records are compared with.
 *
 * ffmpeg 5.1 keeps the zero_byte of the next NAL's 4-byte start code at the end of the last parameter set it copies
 * into the record (`...62 40 00`); Annex B.2 makes it part of the start code, not of the NAL unit (which ends with
 * rbsp_stop_one_bit), so it is trimmed here.
 */
export async function ffmpegRecordFields(
  codec: NalCodec,
  annexB: Uint8Array,
): Promise<AvccFields | HvccFields> {
  const dir = await Deno.makeTempDir();
  try {
    const raw = `${dir}/stream.${codec === "avc" ? "h264" : "hevc"}`;
    await Deno.writeFile(raw, annexB);
    const tag = codec === "hevc" ? ["-tag:v", "hvc1"] : [];
    await run("ffmpeg", ["-v", "error", "-i", raw, "-c", "copy", ...tag, `${dir}/ref.mp4`]);
    const fields = parseRecord(codec, videoSampleEntry(await Deno.readFile(`${dir}/ref.mp4`)).config.payload);
    const trim = (nal: number[]) => nal.at(-1) === 0 ? nal.slice(0, -1) : nal;
    if ("arrays" in fields) fields.arrays.forEach((a) => a.nalUnits = a.nalUnits.map(trim));
    else [fields.sps, fields.pps] = [fields.sps.map(trim), fields.pps.map(trim)];
    return fields;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
