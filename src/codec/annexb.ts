/**
 * Annex B (ITU-T H.264 / H.265 byte stream) parsing: incremental splitting of an encoder's output into NAL units and
 * access units, key frame detection, parameter set extraction and RFC 6381 codec strings.
 *
 * The splitters accept the stream in arbitrary pieces (a pipe delivers whatever the kernel had), so a start code or a
 * NAL header may straddle two pushes; an access unit is only known to be complete when the next one starts or the
 * stream ends.
 *
 * @example
 * ```ts
 * import { AccessUnitSplitter } from "./annexb.ts";
 * const split = new AccessUnitSplitter("avc");
 * const units = [...split.push(await Deno.readFile("clip.h264")), ...split.end()];
 * console.log(units.length, units[0].key);
 * ```
 * @module
 */

import { joinBytes } from "../runtime/bytes.ts";

/**
 * The two bitstream families: `avc` is H.264, `hevc` is H.265.
 *
 * @example
 * ```ts
 * import type { NalCodec } from "./annexb.ts";
 * const codec: NalCodec = "hevc";
 * ```
 */
export type NalCodec = "avc" | "hevc";

/**
 * Splits an Annex B byte stream into NAL units (payloads without start codes), whatever the chunking.
 *
 * @example
 * ```ts
 * import { NalSplitter } from "./annexb.ts";
 * const s = new NalSplitter();
 * const nals = [...s.push(new Uint8Array([0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68])), ...s.end()];
 * // nals: [Uint8Array [0x67, 1], Uint8Array [0x68]]
 * ```
 */
export class NalSplitter {
  #buf = new Uint8Array(0);
  /** Offset of the current NAL's first byte in #buf, or -1 before the first start code. */
  #nalStart = -1;
  /** Where the next start code search resumes (earlier bytes are known not to begin one). */
  #scan = 0;

  /** Adds bytes; returns the NAL units completed by them. */
  push(bytes: Uint8Array): Uint8Array[] {
    if (bytes.byteLength === 0) return [];
    const merged = new Uint8Array(this.#buf.byteLength + bytes.byteLength);
    merged.set(this.#buf, 0);
    merged.set(bytes, this.#buf.byteLength);
    this.#buf = merged;
    const out: Uint8Array[] = [];
    const b = this.#buf;
    let i = this.#scan;
    for (; i + 2 < b.byteLength; i++) {
      // A start code is 00 00 01; skipping by the third byte keeps the scan near one comparison per byte.
      if (b[i + 2] > 1) {
        i += 2;
        continue;
      }
      if (b[i] !== 0 || b[i + 1] !== 0 || b[i + 2] !== 1) continue;
      if (this.#nalStart >= 0) {
        const nal = trimTrailingZeros(b.subarray(this.#nalStart, i));
        if (nal.byteLength > 0) out.push(nal.slice());
      }
      this.#nalStart = i + 3;
      i += 2;
    }
    this.#scan = i;
    // Drop consumed bytes so the buffer holds at most one partial NAL plus a few bytes of a possible start code.
    const keepFrom = this.#nalStart >= 0 ? Math.min(this.#nalStart, this.#scan) : this.#scan;
    if (keepFrom > 0) {
      this.#buf = this.#buf.slice(keepFrom);
      this.#scan -= keepFrom;
      if (this.#nalStart >= 0) this.#nalStart -= keepFrom;
    }
    return out;
  }

  /** Ends the stream; returns the last NAL unit, if any. */
  end(): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#nalStart >= 0) {
      const nal = trimTrailingZeros(this.#buf.subarray(this.#nalStart));
      if (nal.byteLength > 0) out.push(nal.slice());
    }
    this.#buf = new Uint8Array(0);
    this.#nalStart = -1;
    this.#scan = 0;
    return out;
  }
}

function trimTrailingZeros(b: Uint8Array): Uint8Array {
  // NAL units end with rbsp_stop_one_bit, so trailing zero bytes belong to the next start code (zero_byte).
  let end = b.byteLength;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

/**
 * The NAL unit type of `nal` (first byte(s), no start code).
 *
 * @example
 * ```ts
 * import { nalType } from "./annexb.ts";
 * nalType("avc", new Uint8Array([0x65])); // => 5 (IDR slice)
 * nalType("hevc", new Uint8Array([0x40, 0x01])); // => 32 (VPS)
 * ```
 */
export function nalType(codec: NalCodec, nal: Uint8Array): number {
  return codec === "avc" ? nal[0] & 0x1f : (nal[0] >> 1) & 0x3f;
}

function isVcl(codec: NalCodec, type: number): boolean {
  return codec === "avc" ? type >= 1 && type <= 5 : type <= 31;
}

/** True for NAL types that may only come before the first VCL NAL of an access unit (so they open a new one). */
function opensAccessUnit(codec: NalCodec, type: number): boolean {
  if (codec === "avc") {
    return type === 6 || type === 7 || type === 8 || type === 9 || (type >= 14 && type <= 18);
  }
  return (type >= 32 && type <= 35) || type === 39 || (type >= 41 && type <= 44) ||
    (type >= 48 && type <= 55);
}

/** True when a VCL NAL is the first slice of its picture (first_mb_in_slice = 0 / first_slice_segment_in_pic_flag). */
function isFirstSlice(codec: NalCodec, nal: Uint8Array): boolean {
  // H.264: first_mb_in_slice is ue(v); value 0 is the single bit '1'. HEVC: a flag, the first bit after the header.
  const byte = codec === "avc" ? nal[1] : nal[2];
  return byte !== undefined && (byte & 0x80) !== 0;
}

/**
 * True when `nal` is a random access point: an IDR slice (H.264) or an IRAP picture (HEVC: BLA, IDR, CRA).
 *
 * @example
 * ```ts
 * import { isKeyNal } from "./annexb.ts";
 * isKeyNal("avc", new Uint8Array([0x65, 0x88])); // => true
 * ```
 */
export function isKeyNal(codec: NalCodec, nal: Uint8Array): boolean {
  const t = nalType(codec, nal);
  return codec === "avc" ? t === 5 : t >= 16 && t <= 23;
}

/**
 * One coded picture: its NAL units in order, as Annex B bytes with 4-byte start codes.
 *
 * @example
 * ```ts
 * import type { AccessUnit } from "./annexb.ts";
 * const size = (au: AccessUnit) => au.data.byteLength;
 * ```
 */
export interface AccessUnit {
  /** Annex B bytes (each NAL preceded by 00 00 00 01), the form WebCodecs gives with `format: "annexb"`. */
  data: Uint8Array;
  /** The NAL units without start codes (views into `data`). */
  nals: Uint8Array[];
  /** True when the picture is a random access point. */
  key: boolean;
}

/**
 * Groups NAL units into access units (pictures), following H.264 7.4.1.2.3 and H.265 7.4.2.4.4: a new picture starts
 * at a parameter set, AUD or prefix SEI after a slice, or at a slice that is the first of its picture.
 *
 * @example
 * ```ts
 * import { AccessUnitSplitter } from "./annexb.ts";
 * const split = new AccessUnitSplitter("hevc");
 * for (const au of split.push(new Uint8Array(0))) console.log(au.key);
 * for (const au of split.end()) console.log(au.key);
 * ```
 */
export class AccessUnitSplitter {
  readonly codec: NalCodec;
  #nals = new NalSplitter();
  #current: Uint8Array[] = [];
  #currentHasVcl = false;

  constructor(codec: NalCodec) {
    this.codec = codec;
  }

  /** Adds stream bytes; returns the access units completed by them. */
  push(bytes: Uint8Array): AccessUnit[] {
    return this.#group(this.#nals.push(bytes));
  }

  /** Ends the stream; returns the remaining access unit(s). */
  end(): AccessUnit[] {
    const out = this.#group(this.#nals.end());
    if (this.#current.length > 0 && this.#currentHasVcl) out.push(buildAccessUnit(this.codec, this.#current));
    this.#current = [];
    this.#currentHasVcl = false;
    return out;
  }

  #group(nals: Uint8Array[]): AccessUnit[] {
    const out: AccessUnit[] = [];
    for (const nal of nals) {
      const type = nalType(this.codec, nal);
      const vcl = isVcl(this.codec, type);
      const boundary = this.#currentHasVcl &&
        (opensAccessUnit(this.codec, type) || (vcl && isFirstSlice(this.codec, nal)));
      if (boundary) {
        out.push(buildAccessUnit(this.codec, this.#current));
        this.#current = [];
        this.#currentHasVcl = false;
      }
      this.#current.push(nal);
      if (vcl) this.#currentHasVcl = true;
    }
    return out;
  }
}

function buildAccessUnit(codec: NalCodec, nals: Uint8Array[]): AccessUnit {
  let size = 0;
  for (const n of nals) size += 4 + n.byteLength;
  const data = new Uint8Array(size);
  const views: Uint8Array[] = [];
  let off = 0;
  let key = false;
  for (const n of nals) {
    data[off + 3] = 1;
    data.set(n, off + 4);
    views.push(data.subarray(off + 4, off + 4 + n.byteLength));
    off += 4 + n.byteLength;
    if (isKeyNal(codec, n)) key = true;
  }
  return { data, nals: views, key };
}

/**
 * The parameter sets found in an access unit (the first of each kind).
 *
 * @example
 * ```ts
 * import type { ParameterSets } from "./annexb.ts";
 * const complete = (ps: ParameterSets) => ps.sps !== undefined && ps.pps !== undefined;
 * ```
 */
export interface ParameterSets {
  /** HEVC only. */
  vps?: Uint8Array;
  sps?: Uint8Array;
  pps?: Uint8Array;
}

/**
 * Extracts VPS/SPS/PPS from the NAL units of an access unit (normally the first key frame).
 *
 * @example
 * ```ts
 * import { parameterSets } from "./annexb.ts";
 * const ps = parameterSets("avc", [new Uint8Array([0x67, 0x64, 0, 0x1f]), new Uint8Array([0x68, 0xee])]);
 * // ps.sps[1] === 0x64
 * ```
 */
export function parameterSets(codec: NalCodec, nals: Uint8Array[]): ParameterSets {
  const ps: ParameterSets = {};
  for (const nal of nals) {
    const t = nalType(codec, nal);
    if (codec === "avc") {
      if (t === 7) ps.sps ??= nal;
      else if (t === 8) ps.pps ??= nal;
    } else {
      if (t === 32) ps.vps ??= nal;
      else if (t === 33) ps.sps ??= nal;
      else if (t === 34) ps.pps ??= nal;
    }
  }
  return ps;
}

/**
 * Removes emulation prevention bytes (00 00 03 → 00 00), giving the RBSP whose fields can be read bit by bit.
 *
 * @example
 * ```ts
 * import { unescapeRbsp } from "./annexb.ts";
 * unescapeRbsp(new Uint8Array([1, 0, 0, 3, 1])); // => Uint8Array [1, 0, 0, 1]
 * ```
 */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const out = new Uint8Array(nal.byteLength);
  let n = 0;
  let zeros = 0;
  for (let i = 0; i < nal.byteLength; i++) {
    const v = nal[i];
    if (zeros >= 2 && v === 3) {
      zeros = 0;
      continue;
    }
    zeros = v === 0 ? zeros + 1 : 0;
    out[n++] = v;
  }
  return out.subarray(0, n);
}

const hex2 = (v: number) => v.toString(16).padStart(2, "0");

/**
 * The RFC 6381 / ISO 14496-15 codec string for a sequence parameter set: `avc1.PPCCLL` for H.264,
 * `hvc1.P.C.TL.B...` for HEVC (the `hvc1` form, which Apple players require).
 *
 * @example
 * ```ts
 * import { codecString } from "./annexb.ts";
 * codecString("avc", new Uint8Array([0x67, 0x64, 0x00, 0x1f, 0xac])); // => "avc1.64001f"
 * ```
 */
export function codecString(codec: NalCodec, sps: Uint8Array): string {
  const r = unescapeRbsp(sps);
  if (codec === "avc") {
    if (r.byteLength < 4) throw new Error("H.264 SPS too short for a codec string");
    return `avc1.${hex2(r[1])}${hex2(r[2])}${hex2(r[3])}`;
  }
  // HEVC SPS: 2-byte NAL header, then 1 byte (vps id, max_sub_layers_minus1, temporal_id_nesting), then
  // the 12-byte general profile_tier_level.
  if (r.byteLength < 15) throw new Error("HEVC SPS too short for a codec string");
  const p = r.subarray(3, 15);
  const space = ["", "A", "B", "C"][p[0] >> 6];
  const tier = (p[0] & 0x20) !== 0 ? "H" : "L";
  const profile = p[0] & 0x1f;
  const compat = ((p[1] << 24) | (p[2] << 16) | (p[3] << 8) | p[4]) >>> 0;
  // ISO 14496-15 E.3: the 32 compatibility flags are written in reverse bit order, in hex without leading zeros.
  let reversed = 0;
  for (let i = 0; i < 32; i++) if (compat & (1 << i)) reversed |= 1 << (31 - i);
  const constraints = Array.from(p.subarray(5, 11));
  while (constraints.length > 0 && constraints[constraints.length - 1] === 0) constraints.pop();
  const tail = constraints.map((c) => "." + c.toString(16).toUpperCase()).join("");
  return `hvc1.${space}${profile}.${(reversed >>> 0).toString(16).toUpperCase()}.${tier}${p[11]}${tail}`;
}

/**
 * Splits one complete Annex B buffer (an access unit, say) into its NAL units, without start codes.
 *
 * @example
 * ```ts
 * import { splitNals } from "./annexb.ts";
 * splitNals(new Uint8Array([0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68])); // => [Uint8Array [0x67, 1], Uint8Array [0x68]]
 * ```
 */
export function splitNals(annexB: Uint8Array): Uint8Array[] {
  const s = new NalSplitter();
  return [...s.push(annexB), ...s.end()];
}

/** Reads an RBSP MSB first: fixed-width fields and Exp-Golomb codes (H.264/H.265 clause 7.2 and 9.2). */
class BitReader {
  readonly #bytes: Uint8Array;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** An unsigned field of `n` ≤ 32 bits. */
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.#bit();
    return v;
  }

  skip(n: number): void {
    if (this.#pos + n > this.#bytes.byteLength * 8) throw new Error("parameter set ends early");
    this.#pos += n;
  }

  /** ue(v). */
  ue(): number {
    let zeros = 0;
    while (this.#bit() === 0) {
      if (++zeros > 31) throw new Error("invalid Exp-Golomb code in a parameter set");
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  #bit(): number {
    const byte = this.#bytes[this.#pos >> 3];
    if (byte === undefined) throw new Error("parameter set ends early");
    const bit = (byte >> (7 - (this.#pos & 7))) & 1;
    this.#pos++;
    return bit;
  }
}

/**
 * What an HEVC decoder configuration record takes from the SPS (H.265 7.3.2.2 and 7.3.3).
 *
 * @example
 * ```ts
 * import type { HevcSpsInfo } from "./annexb.ts";
 * const isMain = (s: HevcSpsInfo) => s.profileIdc === 1 && s.bitDepthLumaMinus8 === 0;
 * ```
 */
export interface HevcSpsInfo {
  maxSubLayersMinus1: number;
  temporalIdNesting: boolean;
  /** The 12 bytes of general_profile_tier_level as coded: space/tier/idc, 32 compatibility flags, 48 constraint
   * bits, level. */
  generalProfileTierLevel: Uint8Array;
  profileIdc: number;
  chromaFormatIdc: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
}

/**
 * Parses the fields of an HEVC SPS (NAL unit with its 2-byte header) that the `hvcC` record repeats.
 *
 * @example
 * ```ts
 * import { hevcSpsInfo } from "./annexb.ts";
 * declare const sps: Uint8Array;
 * const info = hevcSpsInfo(sps); // { profileIdc: 1, chromaFormatIdc: 1, bitDepthLumaMinus8: 0, ... }
 * ```
 */
export function hevcSpsInfo(sps: Uint8Array): HevcSpsInfo {
  const rbsp = unescapeRbsp(sps);
  const r = new BitReader(rbsp.subarray(2));
  r.skip(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.bits(3);
  const temporalIdNesting = r.bits(1) === 1;
  if (rbsp.byteLength < 15) throw new Error("HEVC SPS too short");
  // The general profile_tier_level is byte aligned here (3 bytes in), so it is copied as coded.
  const generalProfileTierLevel = rbsp.slice(3, 15);
  r.skip(96);
  skipSubLayerProfileTierLevels(r, maxSubLayersMinus1);
  r.ue(); // sps_seq_parameter_set_id
  const chromaFormatIdc = r.ue();
  if (chromaFormatIdc === 3) r.skip(1); // separate_colour_plane_flag
  r.ue(); // pic_width_in_luma_samples
  r.ue(); // pic_height_in_luma_samples
  if (r.bits(1) === 1) { for (let i = 0; i < 4; i++) r.ue(); // conformance window offsets
   }
  const bitDepthLumaMinus8 = r.ue();
  const bitDepthChromaMinus8 = r.ue();
  return {
    maxSubLayersMinus1,
    temporalIdNesting,
    generalProfileTierLevel,
    profileIdc: generalProfileTierLevel[0] & 0x1f,
    chromaFormatIdc,
    bitDepthLumaMinus8,
    bitDepthChromaMinus8,
  };
}

/** Skips the sub-layer part of profile_tier_level(1, maxSubLayersMinus1) (H.265 7.3.3). */
function skipSubLayerProfileTierLevels(r: BitReader, maxSubLayersMinus1: number): void {
  const present: [boolean, boolean][] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) present.push([r.bits(1) === 1, r.bits(1) === 1]);
  if (maxSubLayersMinus1 > 0) r.skip(2 * (8 - maxSubLayersMinus1)); // reserved_zero_2bits
  for (const [profile, level] of present) {
    if (profile) r.skip(88);
    if (level) r.skip(8);
  }
}

/** vps_max_sub_layers_minus1 of an HEVC VPS (H.265 7.3.2.1). */
function vpsMaxSubLayersMinus1(vps: Uint8Array): number {
  const r = new BitReader(unescapeRbsp(vps).subarray(2));
  r.skip(4 + 1 + 1 + 6); // vps_video_parameter_set_id, base layer flags, vps_max_layers_minus1
  return r.bits(3);
}

/**
 * Builds the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3, the payload of `hvcC`) from VPS/SPS/PPS, as
 * ffmpeg writes it: profile/tier/level copied from the SPS, 4-byte NAL lengths, one array per parameter set type
 * with array_completeness = 1 because the samples carry none (what `hvc1`, unlike `hev1`, promises).
 *
 * @example
 * ```ts
 * import { hevcDecoderConfigurationRecord, parameterSets } from "./annexb.ts";
 * declare const firstKeyFrameNals: Uint8Array[];
 * const hvcC = hevcDecoderConfigurationRecord(parameterSets("hevc", firstKeyFrameNals));
 * ```
 */
export function hevcDecoderConfigurationRecord(ps: ParameterSets): Uint8Array {
  if (!ps.vps || !ps.sps || !ps.pps) throw new Error("an hvcC record needs a VPS, an SPS and a PPS");
  const sps = hevcSpsInfo(ps.sps);
  const temporalLayers = Math.max(sps.maxSubLayersMinus1, vpsMaxSubLayersMinus1(ps.vps)) + 1;
  const header = [
    1, // configurationVersion
    ...sps.generalProfileTierLevel,
    // min_spatial_segmentation_idc = 0 (no indication, allowed for any stream; it sits deep in the VUI) and hence
    // parallelismType = 0, as ffmpeg writes when the VUI gives none.
    0xf0,
    0x00,
    0xfc,
    0xfc | sps.chromaFormatIdc,
    0xf8 | sps.bitDepthLumaMinus8,
    0xf8 | sps.bitDepthChromaMinus8,
    0x00, // avgFrameRate: 0 = unspecified (capture timing is irregular)
    0x00,
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne = 3.
    (temporalLayers << 3) | (sps.temporalIdNesting ? 0x04 : 0) | 0x03,
    3, // numOfArrays
  ];
  const arrays = ([[32, ps.vps], [33, ps.sps], [34, ps.pps]] as const).map(([type, nal]) =>
    // array_completeness = 1, reserved 0, NAL_unit_type; numNalus = 1; nalUnitLength; the NAL unit.
    joinBytes([new Uint8Array([0x80 | type, 0, 1, nal.byteLength >> 8, nal.byteLength & 0xff]), nal])
  );
  return joinBytes([new Uint8Array(header), ...arrays]);
}

/** H.264 profiles whose SPS carries chroma_format_idc and bit depths (H.264 7.3.2.1.1). */
const AVC_CHROMA_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);
/**
 * Profiles without the avcC chroma/bit depth extension: Baseline, Main, Extended. ISO/IEC 14496-15 5.3.3.1.2 (since
 * its 2014 edition) and ffmpeg write the extension for every other profile (the 2010 edition listed 100/110/122/144).
 */
const AVCC_PLAIN_PROFILES = new Set([66, 77, 88]);

/**
 * Builds the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3, the payload of `avcC`) from SPS/PPS, with 4-byte
 * NAL lengths and, for profiles above Main/Extended, the chroma format and bit depth extension.
 *
 * @example
 * ```ts
 * import { avcDecoderConfigurationRecord, parameterSets } from "./annexb.ts";
 * declare const firstKeyFrameNals: Uint8Array[];
 * const avcC = avcDecoderConfigurationRecord(parameterSets("avc", firstKeyFrameNals));
 * ```
 */
export function avcDecoderConfigurationRecord(ps: ParameterSets): Uint8Array {
  if (!ps.sps || !ps.pps) throw new Error("an avcC record needs an SPS and a PPS");
  const rbsp = unescapeRbsp(ps.sps);
  if (rbsp.byteLength < 4) throw new Error("H.264 SPS too short");
  const profile = rbsp[1];
  const parts = [
    // configurationVersion, profile, compatibility (constraint flags), level, lengthSizeMinusOne = 3, one SPS.
    new Uint8Array([
      1,
      profile,
      rbsp[2],
      rbsp[3],
      0xff,
      0xe1,
      ps.sps.byteLength >> 8,
      ps.sps.byteLength & 0xff,
    ]),
    ps.sps,
    new Uint8Array([1, ps.pps.byteLength >> 8, ps.pps.byteLength & 0xff]),
    ps.pps,
  ];
  if (!AVCC_PLAIN_PROFILES.has(profile)) {
    const r = new BitReader(rbsp.subarray(4));
    r.ue(); // seq_parameter_set_id
    const chroma = AVC_CHROMA_PROFILES.has(profile) ? r.ue() : 1;
    if (chroma === 3) r.skip(1); // separate_colour_plane_flag
    const luma = r.ue();
    const chromaDepth = r.ue();
    parts.push(new Uint8Array([0xfc | chroma, 0xf8 | luma, 0xf8 | chromaDepth, 0])); // numOfSequenceParameterSetExt
  }
  return joinBytes(parts);
}

/**
 * The decoder configuration record (`avcC` or `hvcC` payload) for `codec`.
 *
 * @example
 * ```ts
 * import { decoderConfigurationRecord, parameterSets } from "./annexb.ts";
 * declare const firstKeyFrameNals: Uint8Array[];
 * const record = decoderConfigurationRecord("avc", parameterSets("avc", firstKeyFrameNals));
 * ```
 */
export function decoderConfigurationRecord(codec: NalCodec, ps: ParameterSets): Uint8Array {
  return codec === "avc" ? avcDecoderConfigurationRecord(ps) : hevcDecoderConfigurationRecord(ps);
}

/**
 * Converts an access unit's NAL units to an MP4 sample: each NAL preceded by its 4-byte length, without access unit
 * delimiters (the sample is the access unit) and without the parameter sets that the configuration record `inRecord`
 * already holds. Parameter sets that differ from the record's stay in-band: dropping them would break decoding, and a
 * segment's encoder never changes them.
 *
 * @example
 * ```ts
 * import { mp4Sample, parameterSets, splitNals } from "./annexb.ts";
 * declare const accessUnit: Uint8Array;
 * const nals = splitNals(accessUnit);
 * const sample = mp4Sample("hevc", nals, parameterSets("hevc", nals)); // slices and SEI only
 * ```
 */
export function mp4Sample(codec: NalCodec, nals: Uint8Array[], inRecord: ParameterSets): Uint8Array {
  const recorded = [inRecord.vps, inRecord.sps, inRecord.pps].filter((p): p is Uint8Array => p !== undefined);
  const kept = nals.filter((nal) => {
    const t = nalType(codec, nal);
    if (t === (codec === "avc" ? 9 : 35)) return false; // AUD
    return !recorded.some((p) => sameBytes(p, nal));
  });
  const out = new Uint8Array(kept.reduce((n, nal) => n + 4 + nal.byteLength, 0));
  const view = new DataView(out.buffer);
  let off = 0;
  for (const nal of kept) {
    view.setUint32(off, nal.byteLength);
    out.set(nal, off + 4);
    off += 4 + nal.byteLength;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
