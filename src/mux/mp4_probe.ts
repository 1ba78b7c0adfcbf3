/**
 * Reads a segment's media facts (codec, size, frame rate, duration) from the MP4 itself, in process, with Mediabunny's
 * demuxer (the muxing side is mp4_muxer.ts). The sinks use it for every segment, ours or MSight's, so the `.json`
 * describes the file that was written rather than what a message claims.
 *
 * @example
 * ```ts
 * import { probeMp4 } from "./mp4_probe.ts";
 * const facts = await probeMp4(await Deno.readFile("seg.mp4"));
 * console.log(facts.codec, facts.width, facts.height, facts.fps, facts.duration); // "hevc" 1280 960 10 5
 * ```
 * @module
 */

import { BufferSource, Input, MP4, QTFF } from "mediabunny";

/** What the MP4 says about its video track. */
export interface Mp4Facts {
  /** `h264`, `hevc` (or Mediabunny's name of another codec). */
  codec: string;
  width: number;
  height: number;
  /** Frames over duration, to 3 decimals. */
  fps: number;
  /** Seconds, to the microsecond. */
  duration: number;
  frames: number;
}

/** Demuxes the MP4 (given whole, or as pieces in order) and returns its video track's facts; throws when it has none. */
export async function probeMp4(mp4: Uint8Array | Uint8Array[]): Promise<Mp4Facts> {
  const bytes = Array.isArray(mp4) ? join(mp4) : mp4;
  const input = new Input({ source: new BufferSource(bytes), formats: [MP4, QTFF] });
  try {
    const track = await input.getPrimaryVideoTrack();
    if (!track) throw new Error("the MP4 has no video track");
    const duration = await track.computeDuration();
    const stats = await track.computePacketStats();
    const codec = track.codec === "avc" ? "h264" : track.codec ?? "unknown";
    return {
      codec,
      width: await track.getDisplayWidth(),
      height: await track.getDisplayHeight(),
      fps: duration > 0 ? Math.round((stats.packetCount / duration) * 1000) / 1000 : 0,
      duration: Math.round(duration * 1e6) / 1e6,
      frames: stats.packetCount,
    };
  } finally {
    input.dispose();
  }
}

function join(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
