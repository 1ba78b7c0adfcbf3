import assert from "node:assert/strict";
import {
  AccessUnitSplitter,
  codecString,
  decoderConfigurationRecord,
  hevcSpsInfo,
  mp4Sample,
  type NalCodec,
  NalSplitter,
  nalType,
  parameterSets,
  splitNals,
  unescapeRbsp,
} from "../../src/codec/annexb.ts";
import { ffmpegRecordFields, loadFrames, parseRecord, run } from "../helpers/media.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";

const sc4 = [0, 0, 0, 1];
const sc3 = [0, 0, 1];

/** A small H.264 stream: 3 pictures, the first an IDR in two slices, with 3- and 4-byte start codes. */
function h264Stream(): { bytes: Uint8Array; pictures: number[][][] } {
  const sps = [0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
  const pps = [0x68, 0xeb, 0xe3, 0xcb];
  const sei = [0x06, 0x05, 0x02, 0x00, 0x00, 0x03, 0x01, 0x80]; // contains an emulation prevention byte
  const idr0 = [0x65, 0x88, 0x84, 0x00, 0x21]; // first_mb_in_slice = 0 (leading bit 1)
  const idr1 = [0x65, 0x40, 0x11, 0x22]; // first_mb_in_slice != 0: same picture
  const p1 = [0x41, 0x9a, 0x02, 0x03];
  const p2a = [0x41, 0x9a, 0x04];
  const p2b = [0x41, 0x20, 0x05, 0x06]; // second slice of picture 3
  const pictures = [[sps, pps, sei, idr0, idr1], [p1], [p2a, p2b]];
  const bytes = [
    ...sc4,
    ...sps,
    ...sc4,
    ...pps,
    ...sc3,
    ...sei,
    ...sc3,
    ...idr0,
    0, // trailing_zero_8bits before the next start code
    ...sc3,
    ...idr1,
    ...sc4,
    ...p1,
    ...sc3,
    ...p2a,
    ...sc4,
    ...p2b,
  ];
  return { bytes: new Uint8Array(bytes), pictures };
}

/** A small HEVC stream: VPS/SPS/PPS + IDR_W_RADL picture, then two TRAIL_R pictures (one in two segments). */
function hevcStream(): { bytes: Uint8Array; pictures: number[][][] } {
  const vps = [0x40, 0x01, 0x0c];
  const sps = [0x42, 0x01, 0x01, 0x01, 0x60];
  const pps = [0x44, 0x01, 0xc1];
  const idr = [0x26, 0x01, 0xaf, 0x10]; // type 19, first_slice_segment_in_pic_flag = 1
  const t1 = [0x02, 0x01, 0xd0, 0x11];
  const t2a = [0x02, 0x01, 0xd0, 0x12];
  const t2b = [0x02, 0x01, 0x20, 0x13]; // flag 0: continues picture 3
  const suffixSei = [0x50, 0x01, 0x05]; // type 40: belongs to the current picture
  const pictures = [[vps, sps, pps, idr], [t1], [t2a, t2b, suffixSei]];
  const bytes = pictures.flat().flatMap((n, i) => [...(i % 2 ? sc3 : sc4), ...n]);
  return { bytes: new Uint8Array(bytes), pictures };
}

function splitAt(codec: NalCodec, bytes: Uint8Array, cuts: number[]) {
  const s = new AccessUnitSplitter(codec);
  const out = [];
  let prev = 0;
  for (const c of [...cuts, bytes.byteLength]) {
    out.push(...s.push(bytes.subarray(prev, c)));
    prev = c;
  }
  out.push(...s.end());
  return out.map((au) => ({ key: au.key, nals: au.nals.map((n) => Array.from(n)) }));
}

for (const [codec, make] of [["avc", h264Stream], ["hevc", hevcStream]] as const) {
  Deno.test(`annexb ${codec}: every single split point and every pair of split points give the same pictures`, () => {
    const { bytes, pictures } = make();
    const expected = pictures.map((p, i) => ({ key: i === 0, nals: p }));
    assert.deepEqual(splitAt(codec, bytes, []), expected);
    for (let i = 0; i <= bytes.byteLength; i++) {
      assert.deepEqual(splitAt(codec, bytes, [i]), expected, `cut at ${i}`);
      for (let j = i; j <= bytes.byteLength; j++) {
        assert.deepEqual(splitAt(codec, bytes, [i, j]), expected, `cuts at ${i},${j}`);
      }
    }
    // One byte at a time: start codes always straddle pushes.
    assert.deepEqual(splitAt(codec, bytes, Array.from({ length: bytes.byteLength }, (_, i) => i)), expected);
  });
}

Deno.test("annexb: NalSplitter ignores bytes before the first start code and strips trailing zeros", () => {
  const s = new NalSplitter();
  const nals = [...s.push(new Uint8Array([9, 9, 0, 0, 1, 0x67, 5, 0, 0, 0, 0, 1, 0x68, 7, 0])), ...s.end()];
  assert.deepEqual(nals.map((n) => Array.from(n)), [[0x67, 5], [0x68, 7]]);
});

Deno.test("annexb: real x264 stream split in random pieces gives one access unit per frame, first key", async () => {
  const frames = await loadFrames(12);
  const jpegs = new Uint8Array(frames.reduce((n, f) => n + f.jpeg.byteLength, 0));
  let off = 0;
  for (const f of frames) {
    jpegs.set(f.jpeg, off);
    off += f.jpeg.byteLength;
  }
  // Sliced threads make several slices per picture, the case a naive "one NAL = one frame" split gets wrong.
  const stream = await run("ffmpeg", [
    "-v",
    "error",
    "-f",
    "image2pipe",
    "-c:v",
    "mjpeg",
    "-i",
    "pipe:0",
    "-vf",
    "scale=320:240",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-x264-params",
    "slices=2",
    "-bf",
    "0",
    "-f",
    "h264",
    "pipe:1",
  ], jpegs);
  const whole = splitAt("avc", stream, []);
  assert.equal(whole.length, 12);
  assert.equal(whole[0].key, true);
  assert.ok(whole.slice(1).every((au) => !au.key));
  assert.ok(whole.every((au) => au.nals.filter((n) => nalType("avc", new Uint8Array(n)) <= 5).length >= 2));
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 20; trial++) {
    const cuts: number[] = [];
    for (let p = 0; p < stream.byteLength; p += 1 + Math.floor(rand() * 4000)) cuts.push(p);
    assert.deepEqual(splitAt("avc", stream, cuts), whole);
  }
});

Deno.test("annexb: parameter sets and codec strings", () => {
  const sps = new Uint8Array([0x67, 0x64, 0x00, 0x1f, 0xac]);
  const pps = new Uint8Array([0x68, 0xeb]);
  assert.deepEqual(parameterSets("avc", [sps, pps, new Uint8Array([0x65, 0x88])]), { sps, pps });
  assert.equal(codecString("avc", sps), "avc1.64001f");
  // HEVC Main, level 4 (120), progressive_source + frame_only constraint flags (0x90), compat flags 1 and 2.
  const hevcSps = new Uint8Array([0x42, 0x01, 0x01, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 3, 0, 0, 0, 120]);
  assert.equal(codecString("hevc", hevcSps), "hvc1.1.6.L120.90");
  assert.deepEqual(Array.from(unescapeRbsp(new Uint8Array([1, 0, 0, 3, 0, 0, 0, 3, 1]))), [
    1,
    0,
    0,
    0,
    0,
    0,
    1,
  ]);
});

Deno.test("annexb: an MP4 sample is length-prefixed, without AUDs and recorded parameter sets, with SEI", () => {
  const [vps, sps, pps] = [[0x40, 0x01, 0x0c], [0x42, 0x01, 0x01], [0x44, 0x01, 0xc1]].map((n) =>
    new Uint8Array(n)
  );
  const aud = new Uint8Array([0x46, 0x01, 0x10]); // type 35
  const sei = new Uint8Array([0x4e, 0x01, 0x05, 0x80]); // type 39, prefix SEI
  const idr = new Uint8Array([0x26, 0x01, 0xaf]);
  const otherPps = new Uint8Array([0x44, 0x01, 0xc2]); // not the recorded one: must stay in-band to decode
  const sample = mp4Sample("hevc", [aud, vps, sps, pps, otherPps, sei, idr], { vps, sps, pps });
  assert.deepEqual(Array.from(sample), [
    ...[0, 0, 0, 3, 0x44, 0x01, 0xc2],
    ...[0, 0, 0, 4, 0x4e, 0x01, 0x05, 0x80],
    ...[0, 0, 0, 3, 0x26, 0x01, 0xaf],
  ]);
  const avc = mp4Sample(
    "avc",
    splitNals(new Uint8Array([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 2])),
    {
      sps: new Uint8Array([0x67, 1]),
    },
  );
  assert.deepEqual(Array.from(avc), [0, 0, 0, 2, 0x65, 2]);
});

Deno.test("annexb: records need every parameter set", () => {
  assert.throws(
    () => decoderConfigurationRecord("hevc", { sps: new Uint8Array([0x42, 1]) }),
    /VPS, an SPS and a PPS/,
  );
  assert.throws(
    () => decoderConfigurationRecord("avc", { sps: new Uint8Array([0x67, 0x42, 0, 0x1e]) }),
    /PPS/,
  );
});

/** Encodes three fixture frames to a bare Annex B stream with the given ffmpeg encoder arguments. */
async function encodeBare(codec: NalCodec, args: string[]): Promise<Uint8Array> {
  const jpegs = joinBytes((await loadFrames(3)).map((f) => f.jpeg));
  const enc = codec === "avc" ? ["-c:v", "libx264", "-f", "h264"] : ["-c:v", "libx265", "-f", "hevc"];
  const input = ["-v", "error", "-f", "image2pipe", "-c:v", "mjpeg", "-i", "pipe:0", "-vf", "scale=320:240"];
  return await run("ffmpeg", [...input, "-preset", "ultrafast", ...args, ...enc, "pipe:1"], jpegs);
}

// Profiles, tiers, constraint flags, chroma formats, bit depths and sub-layers that our SPS parsing must get right,
// each checked against the record ffmpeg writes for the same stream.
// The optional fields are asserted too, so each case provably exercises what its name says.
const RECORD_CASES: [NalCodec, string, string[], Record<string, unknown>?][] = [
  ["hevc", "Main", ["-pix_fmt", "yuv420p", "-x265-params", "log-level=error"]],
  ["hevc", "Main 10", ["-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"]],
  ["hevc", "RExt 4:4:4 (constraint flags)", ["-pix_fmt", "yuv444p", "-x265-params", "log-level=error"], {
    generalProfileIdc: 4,
    chromaFormatIdc: 3,
  }],
  ["hevc", "RExt 4:2:2 10-bit", ["-pix_fmt", "yuv422p10le", "-x265-params", "log-level=error"]],
  // B-frames in a temporal sub-layer: sps_max_sub_layers_minus1 = 1, so sub-layer profile_tier_level is skipped.
  ["hevc", "two temporal layers", [
    "-pix_fmt",
    "yuv420p",
    "-x265-params",
    "log-level=error:bframes=3:temporal-layers=1",
  ]],
  [
    "hevc",
    "high tier",
    ["-pix_fmt", "yuv420p", "-x265-params", "log-level=error:high-tier=1:level-idc=5.1"],
    {
      generalTierFlag: 1,
      generalLevelIdc: 153,
    },
  ],
  ["avc", "Constrained Baseline (no extension)", ["-pix_fmt", "yuv420p"]],
  ["avc", "Main", ["-pix_fmt", "yuv420p", "-profile:v", "main"]],
  ["avc", "High", ["-pix_fmt", "yuv420p", "-profile:v", "high"]],
  ["avc", "High 10", ["-pix_fmt", "yuv420p10le"]],
  ["avc", "High 4:2:2", ["-pix_fmt", "yuv422p"]],
  ["avc", "High 4:4:4", ["-pix_fmt", "yuv444p"], { profile: 244 }],
];

for (const [codec, name, args, expected = {}] of RECORD_CASES) {
  Deno.test(`annexb: ${codec} ${name}: our decoder configuration record equals ffmpeg's`, async () => {
    const stream = await encodeBare(codec, args);
    const split = new AccessUnitSplitter(codec);
    const first = [...split.push(stream), ...split.end()][0];
    const record = decoderConfigurationRecord(codec, parameterSets(codec, first.nals));
    const fields = parseRecord(codec, record);
    assert.deepEqual(fields, await ffmpegRecordFields(codec, stream));
    for (const [key, value] of Object.entries(expected)) {
      assert.equal(fields[key as keyof typeof fields], value, key);
    }
  });
}

Deno.test("annexb: hevcSpsInfo reads the fields of a real Main 10 SPS", async () => {
  const stream = await encodeBare("hevc", ["-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"]);
  const info = hevcSpsInfo(parameterSets("hevc", splitNals(stream)).sps!);
  assert.equal(info.profileIdc, 2);
  assert.equal(info.chromaFormatIdc, 1);
  assert.equal(info.bitDepthLumaMinus8, 2);
  assert.equal(info.bitDepthChromaMinus8, 2);
  assert.equal(info.maxSubLayersMinus1, 0);
  assert.equal(info.temporalIdNesting, true);
});
