import assert from "node:assert/strict";
import { AccessUnitSplitter, codecString, type NalCodec, parameterSets } from "../src/media/annexb.ts";
import type { EncodedChunk } from "../src/media/encoder.ts";
import { Mp4SegmentMuxer, muxMp4 } from "../src/media/muxer.ts";
import {
  decodeFrameCount,
  type FixtureFrame,
  loadFrames,
  probe,
  run,
  topLevelBoxes,
} from "./media_test_helpers.ts";

/** Encodes fixture frames with a bare ffmpeg (not our encoder) and times the pictures by their capture times. */
async function bareChunks(frames: FixtureFrame[], codec: NalCodec) {
  const input = new Uint8Array(frames.reduce((n, f) => n + f.jpeg.byteLength, 0));
  let off = 0;
  for (const f of frames) {
    input.set(f.jpeg, off);
    off += f.jpeg.byteLength;
  }
  const enc = codec === "avc"
    ? ["-c:v", "libx264", "-preset", "ultrafast", "-f", "h264"]
    : ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-f", "hevc"];
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
    "scale=640:480",
    "-pix_fmt",
    "yuv420p",
    "-bf",
    "0",
    ...enc,
    "pipe:1",
  ], input);
  const split = new AccessUnitSplitter(codec);
  const units = [...split.push(stream), ...split.end()];
  assert.equal(units.length, frames.length);
  const chunks: EncodedChunk[] = units.map((au, i) => ({
    type: au.key ? "key" : "delta",
    timestamp: frames[i].timestampUs,
    duration: 100_000,
    data: au.data,
    byteLength: au.data.byteLength,
  }));
  const sps = parameterSets(codec, units[0].nals).sps!;
  return { chunks, decoderConfig: { codec: codecString(codec, sps), codedWidth: 640, codedHeight: 480 } };
}

Deno.test("muxer: H.264 from capture times: avc1, fast start, per-packet pts, real duration", async () => {
  const frames = await loadFrames(40);
  const { chunks, decoderConfig } = await bareChunks(frames, "avc");
  const mp4 = await muxMp4({ codec: "avc", width: 640, height: 480, fps: 10, chunks, decoderConfig });

  const boxes = topLevelBoxes(mp4);
  assert.ok(boxes.indexOf("moov") >= 0 && boxes.indexOf("moov") < boxes.indexOf("mdat"), boxes.join(","));
  const { stream, packets } = await probe(mp4);
  assert.equal(stream.codec_name, "h264");
  assert.equal(stream.codec_tag_string, "avc1");
  assert.equal(stream.pix_fmt, "yuv420p");
  assert.equal(stream.width, 640);
  assert.equal(stream.height, 480);
  assert.equal(Number(stream.nb_frames), 40);
  const t0 = frames[0].timestampUs;
  const span = (frames[39].timestampUs - t0) / 1e6 + 0.1; // last frame lasts 1/fps
  assert.ok(Math.abs(Number(stream.duration) - span) < 0.003, `duration ${stream.duration} vs ${span}`);
  // The capture intervals are irregular (about 100 ms ± a few ms): each packet sits at its own capture time.
  const gaps = frames.slice(1).map((f, i) => f.timestampUs - frames[i].timestampUs);
  assert.ok(Math.max(...gaps) - Math.min(...gaps) > 2000, "fixture should have irregular intervals");
  packets.forEach((p, i) => {
    const want = (frames[i].timestampUs - t0) / 1e6;
    assert.ok(Math.abs(Number(p.pts_time) - want) < 0.0005, `packet ${i} pts ${p.pts_time} vs ${want}`);
  });
  assert.equal(packets[0].flags[0], "K");
  assert.equal(await decodeFrameCount(mp4), 40);
});

Deno.test("muxer: HEVC is tagged hvc1 (Apple players refuse hev1) and plays", async () => {
  const frames = await loadFrames(8);
  const { chunks, decoderConfig } = await bareChunks(frames, "hevc");
  const mux = new Mp4SegmentMuxer({ codec: "hevc", width: 640, height: 480, fps: 10 });
  // Added without awaiting, as an encoder's output callback does.
  const adds = chunks.map((c, i) => mux.add(c, i === 0 ? { decoderConfig } : undefined));
  await Promise.all(adds);
  assert.equal(mux.sampleCount, 8);
  const mp4 = await mux.finalize();
  const { stream } = await probe(mp4);
  assert.equal(stream.codec_name, "hevc");
  assert.equal(stream.codec_tag_string, "hvc1");
  assert.equal(Number(stream.nb_frames), 8);
  assert.equal(await decodeFrameCount(mp4), 8);
});

Deno.test("muxer: refuses a stream that does not start with a key frame, or goes back in time", async () => {
  const frames = await loadFrames(3);
  const { chunks, decoderConfig } = await bareChunks(frames, "avc");
  const mux = new Mp4SegmentMuxer({ codec: "avc", width: 640, height: 480, fps: 10 });
  assert.throws(() => mux.add(chunks[1], { decoderConfig }), /key frame/);
  await mux.add(chunks[0], { decoderConfig });
  assert.throws(() => mux.add({ ...chunks[1], timestamp: chunks[0].timestamp }), /not after/);
  await mux.cancel();
  await assert.rejects(() => new Mp4SegmentMuxer({ codec: "avc", width: 2, height: 2, fps: 10 }).finalize());
});
