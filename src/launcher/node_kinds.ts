/**
 * The node types a pipeline file can run, each with its own flag specs (the same objects the node parses its
 * command line with, so a pipeline file and a command line accept exactly the same flags and values), its stage in
 * the pipeline (sources start first and stop first, sinks last), and the cross-flag checks the node itself makes at
 * start, so a bad combination is reported before anything runs.
 *
 * @example
 * ```ts
 * import { NODE_KINDS } from "./node_kinds.ts";
 * const { specs, stage } = NODE_KINDS.aggregator; // COMMON_FLAGS + AGGREGATOR_FLAGS, stage 1
 * NODE_KINDS.aggregator.check({ bufferSize: 10, overlapSize: 10 }); // { flag: "overlapSize", message: "..." }
 * ```
 * @module
 */

import { AGGREGATOR_FLAGS, checkAggregatorFlags } from "../node/aggregator_flags.ts";
import { DUMPER_FLAGS } from "../node/dumper_flags.ts";
import { checkPusherFlags, PUSHER_FLAGS } from "../node/pusher_flags.ts";
import { checkRtspFlags, RTSP_FLAGS } from "../node/rtsp_flags.ts";
import { COMMON_FLAGS } from "../node/common_flags.ts";
import { checkWebFlags, parseMetricsUrls, WEB_FLAGS } from "../node/web_flags.ts";
import { errorMessage } from "../runtime/errors.ts";
import type { FlagSpecs } from "../runtime/flags.ts";

/** The node types of a pipeline file (the tools `status` and `echo` are not pipeline stages). */
export const PIPELINE_NODE_TYPES = ["rtsp", "aggregator", "dumper", "pusher", "web"] as const;
/** One of {@linkcode PIPELINE_NODE_TYPES}. */
export type PipelineNodeType = typeof PIPELINE_NODE_TYPES[number];

/** A node's flag values after coercion, keyed like its specs (`bufferSize`). */
export type FlagRecord = Record<string, string | number | boolean>;

/** A failed cross-flag check: the spec key of the flag to blame, and why. */
export interface FlagProblem {
  flag: string;
  message: string;
}

/** What the launcher knows about one node type. */
export interface NodeKind {
  /** COMMON_FLAGS and the node's own flags. */
  specs: FlagSpecs;
  /** 0 sources, 1 processors, 2 sinks: the start order, and the stop order (so flushed data flows downstream). */
  stage: number;
  /** The node's own start-up checks across flags (values include defaults). */
  check(values: FlagRecord): FlagProblem | undefined;
}

/** Runs a check that throws, as a {@linkcode FlagProblem} on `flag`. */
function blame(flag: string, fn: () => unknown): FlagProblem | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return { flag, message: errorMessage(err) };
  }
}

/** The node types; the checks are each node's own (exported beside its flags). */
export const NODE_KINDS: Readonly<Record<PipelineNodeType, NodeKind>> = {
  rtsp: {
    specs: { ...COMMON_FLAGS, ...RTSP_FLAGS },
    stage: 0,
    check: (v) =>
      typeof v.url === "string" ? blame("url", () => checkRtspFlags({ url: v.url as string })) : undefined,
  },
  aggregator: {
    specs: { ...COMMON_FLAGS, ...AGGREGATOR_FLAGS },
    stage: 1,
    check: (v) =>
      typeof v.overlapSize === "number" && typeof v.bufferSize === "number"
        ? blame(
          "overlapSize",
          () =>
            checkAggregatorFlags({
              bufferSize: v.bufferSize as number,
              overlapSize: v.overlapSize as number,
            }),
        )
        : undefined,
  },
  dumper: { specs: { ...COMMON_FLAGS, ...DUMPER_FLAGS }, stage: 2, check: () => undefined },
  pusher: {
    specs: { ...COMMON_FLAGS, ...PUSHER_FLAGS },
    stage: 2,
    check: (v) => blame("prefix", () => checkPusherFlags({ prefix: String(v.prefix ?? "") })),
  },
  // The console reads what the others make: it starts last and stops with the sinks.
  web: {
    specs: { ...COMMON_FLAGS, ...WEB_FLAGS },
    stage: 2,
    check: (v) =>
      blame("host", () =>
        checkWebFlags({
          host: String(v.host ?? "127.0.0.1"),
          authToken: typeof v.authToken === "string" ? v.authToken : undefined,
          authTokenFile: typeof v.authTokenFile === "string" ? v.authTokenFile : undefined,
        })) ?? blame("metricsUrls", () => parseMetricsUrls(String(v.metricsUrls ?? ""))),
  },
};
