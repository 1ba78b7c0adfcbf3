/**
 * ffprobe of an in-memory MP4, for tests: stream facts, packet timestamps and the top-level box order.
 *
 * @example
 * ```ts
 * import { probeMp4 } from "./ffprobe.ts";
 * declare const mp4: Uint8Array;
 * const p = await probeMp4(mp4);
 * console.log(p.codec, p.tag, p.frames, p.duration, p.boxes);
 * ```
 * @module
 */

/** What a test wants to know about an MP4. */
export interface Mp4Probe {
  codec: string;
  tag: string;
  pixFmt: string;
  width: number;
  height: number;
  frames: number;
  /** Container duration, seconds. */
  duration: number;
  /** Packet presentation times, seconds, in decode order. */
  pts: number[];
  /** Top-level box types in file order (`ftyp`, `moov`, `mdat`...). */
  boxes: string[];
}

/** Runs ffprobe on the bytes (via a temporary file) and reads the top-level boxes. */
export async function probeMp4(mp4: Uint8Array): Promise<Mp4Probe> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const out = await new Deno.Command("ffprobe", {
      args: ["-v", "error", "-show_streams", "-show_packets", "-show_format", "-of", "json", path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`ffprobe failed: ${new TextDecoder().decode(out.stderr)}`);
    const j = JSON.parse(new TextDecoder().decode(out.stdout));
    const s = j.streams[0];
    const boxes: string[] = [];
    const view = new DataView(mp4.buffer, mp4.byteOffset, mp4.byteLength);
    for (let i = 0; i + 8 <= mp4.length;) {
      let size = view.getUint32(i);
      boxes.push(new TextDecoder().decode(mp4.subarray(i + 4, i + 8)));
      if (size === 1) size = Number(view.getBigUint64(i + 8));
      if (size < 8) break;
      i += size;
    }
    return {
      codec: s.codec_name,
      tag: s.codec_tag_string,
      pixFmt: s.pix_fmt,
      width: s.width,
      height: s.height,
      frames: j.packets.length,
      duration: Number(j.format.duration),
      pts: j.packets.map((p: { pts_time: string }) => Number(p.pts_time)),
      boxes,
    };
  } finally {
    await Deno.remove(path);
  }
}
