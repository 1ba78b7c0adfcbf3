/**
 * MP4 muxing, the one module that knows the muxer library (Mediabunny): one `avc1`/`hvc1` track timed by the
 * chunks' timestamps (strictly increasing: the segment builder puts them on the 1/fps grid by capture time),
 * `moov` first, parameter sets in avcC/hvcC only, written into fixed pages (paged_target.ts) and handed on as
 * them. Why each of these: docs/design.md, "Mux".
 *
 * @example
 * ```ts
 * import type { ChunkMetadata, EncodedChunk } from "../encode/types.ts";
 * import { Mp4SegmentMuxer } from "./mp4_muxer.ts";
 * declare const chunk: EncodedChunk, metadata: ChunkMetadata;
 * const mux = new Mp4SegmentMuxer({ codec: "avc", width: 1280, height: 960, fps: 10 });
 * await mux.add(chunk, metadata); // for each encoder output, in order
 * const mp4: Uint8Array[] = await mux.finalize(); // the file's bytes in order, in pieces
 * ```
 * @module
 */

import {
  EncodedPacket,
  EncodedVideoPacketSource,
  Mp4OutputFormat,
  Output,
  StreamTarget,
  type StreamTargetChunk,
} from "mediabunny";
import {
  decoderConfigurationRecord,
  mp4Sample,
  type ParameterSets,
  parameterSets,
  splitNals,
} from "../codec/annexb.ts";
import type { ChunkMetadata, DecoderConfig, EncodedChunk } from "../encode/types.ts";
import { PagedTarget } from "./paged_target.ts";
import { joinBytes } from "../runtime/bytes.ts";

type PacketMetadata = Parameters<EncodedVideoPacketSource["add"]>[1];

/**
 * Track settings of one segment.
 *
 * @example
 * ```ts
 * import type { MuxerOptions } from "./mp4_muxer.ts";
 * const opts: MuxerOptions = { codec: "avc", width: 1280, height: 960, fps: 10 };
 * ```
 */
export interface MuxerOptions {
  codec: "avc" | "hevc";
  /** The encoded picture size (after odd sizes were cropped), used when no decoderConfig gives it. */
  width: number;
  height: number;
  /** Nominal rate: the last sample's duration is 1/fps. */
  fps: number;
  /**
   * The most samples the segment can hold (the aggregator's `--buffer-size`), when known. The sample table's room
   * is then reserved at the start of the file and each sample is written as it comes, instead of every sample being
   * held until the end: at 1000 frames of 1280×960 (~30 MB) that is one copy of the segment less in memory.
   */
  maxSamples?: number;
}

/**
 * Builds one MP4 from chunks added as they are encoded, fast start (sample table before the data): with
 * `maxSamples` the table's room is reserved and samples are written as they come; without, they stay in memory
 * until {@linkcode Mp4SegmentMuxer.finalize}.
 *
 * @example
 * ```ts
 * import { Mp4SegmentMuxer } from "./mp4_muxer.ts";
 * const mux = new Mp4SegmentMuxer({ codec: "hevc", width: 640, height: 480, fps: 10 });
 * ```
 */
export class Mp4SegmentMuxer {
  readonly options: MuxerOptions;
  #pages = new PagedTarget();
  #output: Output;
  #source: EncodedVideoPacketSource;
  /** Mediabunny calls in order: start, then each packet. */
  #queue: Promise<void> | undefined;
  #firstTimestampUs: number | undefined;
  #lastTimestampUs = -Infinity;
  #count = 0;
  #decoderConfig: DecoderConfig | undefined;
  /** The first key frame's parameter sets, which the avcC/hvcC record holds and the samples therefore leave out. */
  #parameterSets: ParameterSets = {};
  #record: Uint8Array | undefined;

  constructor(options: MuxerOptions) {
    if (!(options.fps > 0)) throw new RangeError(`fps ${options.fps} is invalid: expected > 0`);
    this.options = options;
    const reserve = options.maxSamples !== undefined && options.maxSamples > 0;
    this.#output = new Output({
      format: new Mp4OutputFormat({ fastStart: reserve ? "reserve" : "in-memory" }),
      // Mediabunny hands each write a buffer of its own, copied here into the pages.
      target: new StreamTarget(
        new WritableStream<StreamTargetChunk>({ write: (c) => this.#pages.write(c.data, c.position) }),
      ),
    });
    this.#source = new EncodedVideoPacketSource(options.codec);
    // No frameRate: Mediabunny would snap every timestamp to a 1/fps grid and lose the capture timing.
    this.#output.addVideoTrack(this.#source, reserve ? { maximumPacketCount: options.maxSamples } : {});
  }

  /** Samples added so far. */
  get sampleCount(): number {
    return this.#count;
  }

  /**
   * Adds a chunk in decode order (= presentation order: the encoders use no B-frames). The first chunk must be a key
   * frame with `metadata.decoderConfig`; timestamps must increase. May be called without awaiting: the returned
   * promise only reports backpressure and failures.
   */
  add(chunk: EncodedChunk, metadata?: ChunkMetadata): Promise<void> {
    // Checks and counting happen synchronously, so an encoder may call add() many times without awaiting.
    const first = this.#count === 0;
    if (first) {
      if (chunk.type !== "key") throw new Error("the first sample of an MP4 segment must be a key frame");
      const config = metadata?.decoderConfig;
      if (!config) throw new Error("the first chunk must carry metadata.decoderConfig");
      this.#decoderConfig = config;
      this.#parameterSets = parameterSets(this.options.codec, splitNals(chunk.data));
      // Throws (synchronously, before anything is queued) when the key frame lacks its parameter sets.
      this.#record = decoderConfigurationRecord(this.options.codec, this.#parameterSets);
      this.#firstTimestampUs = chunk.timestamp;
      this.#queue = this.#output.start();
    }
    if (this.options.maxSamples && this.#count >= this.options.maxSamples) {
      throw new RangeError(
        `sample ${this.#count + 1} is over the ${this.options.maxSamples} this segment holds`,
      );
    }
    if (chunk.timestamp <= this.#lastTimestampUs) {
      throw new RangeError(`chunk timestamp ${chunk.timestamp} µs is not after ${this.#lastTimestampUs} µs`);
    }
    this.#lastTimestampUs = chunk.timestamp;
    this.#count++;
    // Rebased to the first sample, so absolute epoch timestamps need no edit list and keep full precision.
    const seconds = (chunk.timestamp - this.#firstTimestampUs!) / 1e6;
    // Mediabunny takes every sample's duration from the next timestamp; only the last one's own duration is used.
    const sample = mp4Sample(this.options.codec, splitNals(chunk.data), this.#parameterSets);
    const packet = new EncodedPacket(sample, chunk.type, seconds, 1 / this.options.fps);
    const meta = first ? { decoderConfig: this.#mediabunnyConfig(this.#decoderConfig!) } : undefined;
    const added = this.#queue!.then(() => this.#source.add(packet, meta));
    // The queue swallows nothing: a failed add makes finalize() fail too.
    this.#queue = added;
    return added;
  }

  /**
   * Writes the sample table and returns the whole file, as pieces to be taken in order (views of the muxer's pages,
   * not copies; {@linkcode joinBytes} makes one buffer of them). Throws when no sample was added.
   */
  async finalize(): Promise<Uint8Array[]> {
    if (this.#count === 0) throw new Error("cannot write an MP4 without samples");
    await this.#queue;
    await this.#output.finalize();
    if (this.#pages.byteLength === 0) throw new Error("the muxer produced no data");
    return this.#pages.pieces();
  }

  /** Drops everything (an abandoned segment). */
  async cancel(): Promise<void> {
    if (this.#queue) {
      // The segment is abandoned: an error from a pending add() was already thrown to its caller.
      await this.#queue.catch(() => {});
      await this.#output.cancel();
    }
  }

  #mediabunnyConfig(config: DecoderConfig): NonNullable<PacketMetadata>["decoderConfig"] {
    return {
      codec: config.codec,
      codedWidth: config.codedWidth || this.options.width,
      codedHeight: config.codedHeight || this.options.height,
      // Our record, never config.description: chunks are Annex B (the encoder contract), and a description given with
      // them would describe some other packaging. With a description, Mediabunny stores the samples as given.
      description: this.#record!,
    };
  }
}

/**
 * Everything one MP4 needs, for callers that have all chunks at hand.
 *
 * @example
 * ```ts
 * import type { DecoderConfig, EncodedChunk } from "../encode/types.ts";
 * import type { MuxMp4Input } from "./mp4_muxer.ts";
 * declare const chunks: EncodedChunk[], decoderConfig: DecoderConfig;
 * const input: MuxMp4Input = { codec: "avc", width: 1280, height: 960, fps: 10, chunks, decoderConfig };
 * ```
 */
export interface MuxMp4Input extends MuxerOptions {
  chunks: EncodedChunk[];
  /** The decoder configuration (WebCodecs' first-output metadata). */
  decoderConfig: DecoderConfig;
}

/**
 * Muxes a complete list of chunks into one MP4 file (see {@linkcode Mp4SegmentMuxer} for the file's properties).
 *
 * @example
 * ```ts
 * import type { DecoderConfig, EncodedChunk } from "../encode/types.ts";
 * import { muxMp4 } from "./mp4_muxer.ts";
 * declare const chunks: EncodedChunk[], decoderConfig: DecoderConfig;
 * const mp4 = await muxMp4({ codec: "avc", width: 1280, height: 960, fps: 10, chunks, decoderConfig });
 * await Deno.writeFile("segment.mp4", mp4);
 * ```
 */
export async function muxMp4(input: MuxMp4Input): Promise<Uint8Array> {
  const mux = new Mp4SegmentMuxer(input);
  for (const [i, chunk] of input.chunks.entries()) {
    await mux.add(chunk, i === 0 ? { decoderConfig: input.decoderConfig } : undefined);
  }
  return joinBytes(await mux.finalize());
}
