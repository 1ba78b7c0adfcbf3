import assert from "node:assert/strict";
import {
  AccessUnitSplitter,
  codecString,
  type NalCodec,
  nalType,
  parameterSets,
  splitNals,
} from "../../src/codec/annexb.ts";
import { codecFamily } from "../../src/encode/config.ts";
import type { EncodedChunk, EncoderCodec } from "../../src/encode/types.ts";
import { Mp4SegmentMuxer, muxMp4 } from "../../src/mux/mp4_muxer.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";
import {
  collectingEncoder,
  decodeFrameCount,
  ffmpegRecordFields,
  type FixtureFrame,
  jpegInputs,
  lengthPrefixedNals,
  loadFrames,
  parseRecord,
  probe,
  run,
  sampleBytes,
  topLevelBoxes,
  videoSampleEntry,
} from "../helpers/media.ts";

/** Encodes fixture frames with a bare ffmpeg (not our encoder) and times the pictures by their capture times. */
async function bareChunks(frames: FixtureFrame[], codec: NalCodec, encoderParams = "") {
  const input = joinBytes(frames.map((f) => f.jpeg));
  const enc = codec === "avc"
    ? [
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      ...(encoderParams ? ["-x264-params", encoderParams] : []),
      "-f",
      "h264",
    ]
    : [
      "-c:v",
      "libx265",
      "-preset",
      "ultrafast",
      "-x265-params",
      `log-level=error:${encoderParams}`,
      "-f",
      "hevc",
    ];
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

Deno.test("muxer: with maxSamples (room reserved, samples written as they come): fast start, same timing, a cap", async () => {
  const frames = await loadFrames(40);
  const { chunks, decoderConfig } = await bareChunks(frames, "avc");
  // Fewer samples than reserved, as when a segment is flushed early: the spare room stays as a free box.
  const mp4 = await muxMp4({
    codec: "avc",
    width: 640,
    height: 480,
    fps: 10,
    chunks,
    decoderConfig,
    maxSamples: 100,
  });
  const boxes = topLevelBoxes(mp4);
  assert.ok(boxes.indexOf("moov") >= 0 && boxes.indexOf("moov") < boxes.indexOf("mdat"), boxes.join(","));
  const { stream, packets } = await probe(mp4);
  assert.equal(stream.codec_tag_string, "avc1");
  assert.equal(Number(stream.nb_frames), 40);
  const t0 = frames[0].timestampUs;
  packets.forEach((p, i) => {
    const want = (frames[i].timestampUs - t0) / 1e6;
    assert.ok(Math.abs(Number(p.pts_time) - want) < 0.0005, `packet ${i} pts ${p.pts_time} vs ${want}`);
  });
  assert.equal(await decodeFrameCount(mp4), 40);
  // One sample more than reserved is refused at once, not discovered at finalize.
  const mux = new Mp4SegmentMuxer({ codec: "avc", width: 640, height: 480, fps: 10, maxSamples: 2 });
  await mux.add(chunks[0], { decoderConfig });
  await mux.add(chunks[1]);
  assert.throws(() => mux.add(chunks[2]), /over the 2 this segment holds/);
});

Deno.test("muxer: HEVC is tagged hvc1 (Apple players refuse hev1) and plays", async () => {
  const frames = await loadFrames(8);
  const { chunks, decoderConfig } = await bareChunks(frames, "hevc");
  const mux = new Mp4SegmentMuxer({ codec: "hevc", width: 640, height: 480, fps: 10 });
  // Added without awaiting, as an encoder's output callback does.
  const adds = chunks.map((c, i) => mux.add(c, i === 0 ? { decoderConfig } : undefined));
  await Promise.all(adds);
  assert.equal(mux.sampleCount, 8);
  const mp4 = joinBytes(await mux.finalize());
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
  // A key frame without its parameter sets cannot give the avcC record.
  const bare = joinBytes(
    splitNals(chunks[0].data).filter((n) => ![7, 8].includes(nalType("avc", n))).flatMap((n) => [
      new Uint8Array([0, 0, 0, 1]),
      n,
    ]),
  );
  assert.throws(
    () => mux.add({ ...chunks[0], data: bare, byteLength: bare.byteLength }, { decoderConfig }),
    /SPS/,
  );
  assert.equal(mux.sampleCount, 0);
  await mux.add(chunks[0], { decoderConfig });
  assert.throws(() => mux.add({ ...chunks[1], timestamp: chunks[0].timestamp }), /not after/);
  await mux.cancel();
  await assert.rejects(() => new Mp4SegmentMuxer({ codec: "avc", width: 2, height: 2, fps: 10 }).finalize());
});

/** Parameter sets and access unit delimiters: what a sample of an `avc1`/`hvc1` file must not carry. */
const OUT_OF_BAND: Record<NalCodec, number[]> = { avc: [7, 8, 9], hevc: [32, 33, 34, 35] };

/** ffmpeg's stderr when decoding the whole file at `-v error`: empty for a clean stream. */
async function decodeErrors(mp4: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, mp4);
    const out = await new Deno.Command("ffmpeg", { args: ["-v", "error", "-i", path, "-f", "null", "-"] })
      .output();
    assert.ok(out.success);
    return new TextDecoder().decode(out.stderr);
  } finally {
    await Deno.remove(path);
  }
}

/** Every sample is length-prefixed NAL units without parameter sets or AUDs; returns the first sample's NAL types. */
function assertSamplesWithoutParameterSets(mp4: Uint8Array, codec: NalCodec, count: number): number[] {
  for (let i = 0; i < count; i++) {
    const types = lengthPrefixedNals(sampleBytes(mp4, i)).map((n) => nalType(codec, n));
    const inBand = types.filter((t) => OUT_OF_BAND[codec].includes(t));
    assert.deepEqual(inBand, [], `sample ${i} carries NAL types ${types}`);
  }
  return lengthPrefixedNals(sampleBytes(mp4, 0)).map((n) => nalType(codec, n));
}

/** The configuration box holds the first key frame's parameter sets and matches ffmpeg's for the same stream. */
async function assertConfigLikeFfmpeg(mp4: Uint8Array, chunks: EncodedChunk[], codec: NalCodec) {
  const ours = videoSampleEntry(mp4);
  assert.equal(ours.type, codec === "avc" ? "avc1" : "hvc1");
  assert.equal(ours.config.type, codec === "avc" ? "avcC" : "hvcC");
  const stream = joinBytes(chunks.map((c) => c.data));
  const fields = parseRecord(codec, ours.config.payload);
  assert.deepEqual(fields, await ffmpegRecordFields(codec, stream));
  const ps = parameterSets(codec, splitNals(chunks[0].data));
  const inStream = [ps.vps, ps.sps, ps.pps].filter((p) => p !== undefined).map((p) => Array.from(p!));
  if ("arrays" in fields) {
    assert.deepEqual(fields.arrays.map((a) => [a.nalUnitType, a.arrayCompleteness, a.nalUnits.length]), [
      [32, 1, 1],
      [33, 1, 1],
      [34, 1, 1],
    ]);
    assert.deepEqual(fields.arrays.map((a) => a.nalUnits[0]), inStream);
  } else {
    assert.deepEqual([...fields.sps, ...fields.pps], inStream);
  }
}

for (const codec of ["libx265", "libx264"] as const satisfies readonly EncoderCodec[]) {
  const family = codecFamily(codec);
  Deno.test(`muxer: ${codec} through our encoder: parameter sets only in the sample entry, record as ffmpeg's`, async () => {
    const frames = await loadFrames(12);
    const c = collectingEncoder("ffmpeg", { codec, width: 1280, height: 960, framerate: 10 });
    for (const f of jpegInputs(frames)) c.encoder.encode(f);
    await c.encoder.flush();
    c.encoder.close();
    assert.deepEqual(c.errors, []);
    assert.equal(c.chunks.length, 12);
    // The encoder's Annex B output does repeat the parameter sets in-band: the muxer is what moves them.
    const inBand = splitNals(c.chunks[0].data).map((n) => nalType(family, n));
    assert.ok(OUT_OF_BAND[family].slice(0, -1).every((t) => inBand.includes(t)), `first chunk: ${inBand}`);
    const mp4 = await muxMp4({
      codec: family,
      width: 1280,
      height: 960,
      fps: 10,
      chunks: c.chunks,
      decoderConfig: c.metas[0]!.decoderConfig!,
    });

    const { stream } = await probe(mp4);
    assert.equal(stream.codec_tag_string, family === "avc" ? "avc1" : "hvc1");
    assert.equal(Number(stream.nb_frames), 12);
    assert.equal(await decodeErrors(mp4), "");
    assert.equal(await decodeFrameCount(mp4), 12);
    const types = assertSamplesWithoutParameterSets(mp4, family, 12);
    // SEI stays in the sample (x264's and x265's encoder info is prefix SEI), followed by the IDR slice(s).
    const [sei, ...slices] = types;
    assert.equal(sei, family === "avc" ? 6 : 39, `first sample: ${types}`);
    assert.ok(
      slices.length > 0 && slices.every((t) => family === "avc" ? t === 5 : t === 19 || t === 20),
      `${types}`,
    );
    await assertConfigLikeFfmpeg(mp4, c.chunks, family);
  });
}

for (const codec of ["avc", "hevc"] as const) {
  const params = "aud=1:keyint=4";
  Deno.test(`muxer: ${codec} with AUDs and parameter sets at every key frame: all stripped, record as ffmpeg's`, async () => {
    const frames = await loadFrames(10);
    const { chunks, decoderConfig } = await bareChunks(frames, codec, params);
    assert.ok(chunks.filter((c) => c.type === "key").length >= 3);
    const aud = codec === "avc" ? 9 : 35;
    assert.ok(chunks.every((c) => nalType(codec, splitNals(c.data)[0]) === aud), "the stream has AUDs");
    const mp4 = await muxMp4({ codec, width: 640, height: 480, fps: 10, chunks, decoderConfig });
    assert.equal(await decodeErrors(mp4), "");
    assert.equal(await decodeFrameCount(mp4), 10);
    assertSamplesWithoutParameterSets(mp4, codec, 10);
    await assertConfigLikeFfmpeg(mp4, chunks, codec);
  });
}
