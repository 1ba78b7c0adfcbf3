/**
 * The Nodes view: every entry of `MSIGHT:NODES` (ours and MSight's) with its heartbeat age, shown as stopped once
 * the heartbeat is older than `staleAfterS`; for our nodes whose `/metrics` address the console was given
 * (`--metrics-urls`: the registry entry has no field for it, and MSight's readers would choke on an extra one),
 * the figures they export: frames/s in and out (rates between two scrapes), segments, drops by reason, malformed
 * messages, outbox depth and reconnects. Scrapes are cached for a second, so many open pages cost one scrape.
 *
 * @example
 * ```ts
 * import { NodesView } from "./nodes_view.ts";
 * declare const bus: import("../bus/types.ts").Bus;
 * const view = new NodesView(bus, new Map([["rtsp_node", "http://127.0.0.1:9101/metrics"]]), 15);
 * const rows = await view.snapshot();
 * ```
 * @module
 */

import { judgeNode, type NodeEntry } from "../bus/registry.ts";
import type { Bus } from "../bus/types.ts";
import { errorMessage } from "../runtime/errors.ts";

/** Figures from a node's `/metrics`. */
export interface NodeFigures {
  fpsIn: number | null;
  fpsOut: number | null;
  segments: number;
  dropped: Record<string, number>;
  malformed: number;
  outboxDepth: number | null;
  reconnects: number | null;
  /** Why the figures could not be read, when they could not. */
  error?: string;
}

/** One row of the Nodes view. */
export interface NodeRow {
  name: string;
  type: string;
  device: string;
  /** The registry's status, or `STOPPED` when the heartbeat is older than the tolerance. */
  status: string;
  registryStatus: string;
  heartbeatAgeS: number;
  publishTopic: string | null;
  subscribeTopic: string | null;
  figures?: NodeFigures;
}

/** Prometheus text → samples: metric name (without labels) → list of [labels text, value]. */
export function parsePrometheus(text: string): Map<string, [string, number][]> {
  const out = new Map<string, [string, number][]>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    const list = out.get(m[1]) ?? [];
    list.push([m[2] ?? "", v]);
    out.set(m[1], list);
  }
  return out;
}

const sum = (s: Map<string, [string, number][]>, name: string) =>
  s.has(name) ? s.get(name)!.reduce((a, [, v]) => a + v, 0) : null;

/** The console's figures from two scrapes (`prev` may be missing: no rates yet). */
export function figuresOf(
  now: Map<string, [string, number][]>,
  prev: Map<string, [string, number][]> | undefined,
  dtS: number,
): NodeFigures {
  const rate = (name: string) => {
    const a = sum(now, name);
    const b = prev ? sum(prev, name) : null;
    return a === null || b === null || dtS <= 0 ? null : Math.max(0, (a - b) / dtS);
  };
  const dropped: Record<string, number> = {};
  for (const [name, samples] of now) {
    if (!/dropped_total$/.test(name)) continue;
    for (const [labels, v] of samples) {
      if (v === 0) continue;
      const reason = /reason="([^"]*)"/.exec(labels)?.[1] ?? name.replace(/^msight_|_dropped_total$/g, "");
      dropped[reason] = (dropped[reason] ?? 0) + v;
    }
  }
  return {
    fpsIn: rate("msight_messages_received_total"),
    fpsOut: rate("msight_frames_published_total"),
    segments: (sum(now, "msight_dumper_segments_written_total") ?? 0) +
      (sum(now, "msight_outbox_segments_uploaded_total") ?? 0) +
      (sum(now, "msight_segments_published_total") ?? 0),
    dropped,
    malformed: sum(now, "msight_messages_malformed_total") ?? 0,
    outboxDepth: sum(now, "msight_outbox_depth"),
    reconnects: sum(now, "msight_reconnects_total"),
  };
}

interface Scrape {
  at: number;
  samples?: Map<string, [string, number][]>;
  prev?: { at: number; samples: Map<string, [string, number][]> };
  figures?: NodeFigures;
  pending?: Promise<void>;
}

/** Reads the registry and scrapes our nodes' metrics. */
export class NodesView {
  #scrapes = new Map<string, Scrape>();

  constructor(
    readonly bus: Bus,
    readonly metricsUrls: ReadonlyMap<string, string>,
    readonly staleAfterS: number,
  ) {}

  /** The rows, by name. */
  async snapshot(): Promise<NodeRow[]> {
    const entries = await this.bus.registry.readNodes();
    const now = Date.now() / 1000;
    await Promise.all(entries.filter((e) => this.metricsUrls.has(e.name)).map((e) => this.#scrape(e.name)));
    return entries.map((e) => this.#row(e, now)).sort((a, b) => a.name.localeCompare(b.name));
  }

  #row(e: NodeEntry, now: number): NodeRow {
    const age = now - (typeof e.last_heartbeat === "number" ? e.last_heartbeat : 0);
    // By the rules of the kind of node that wrote the entry (MSight's sinks beat per message, not per second).
    const stale = judgeNode({ ...e, last_heartbeat: now - age }, now, this.staleAfterS).status === "STALE";
    return {
      name: String(e.name),
      type: String(e.type),
      device: String(e.device),
      status: stale ? "STOPPED" : String(e.status),
      registryStatus: String(e.status),
      heartbeatAgeS: age,
      publishTopic: Array.isArray(e.publish_topic) ? e.publish_topic.join(",") : e.publish_topic ?? null,
      subscribeTopic: e.subscribe_topic ?? null,
      figures: this.#scrapes.get(e.name)?.figures,
    };
  }

  #scrape(name: string): Promise<void> {
    const s = this.#scrapes.get(name) ?? { at: 0 };
    this.#scrapes.set(name, s);
    if (s.pending) return s.pending;
    if (Date.now() - s.at < 1000) return Promise.resolve();
    s.pending = (async () => {
      const at = Date.now();
      try {
        const res = await fetch(this.metricsUrls.get(name)!, { signal: AbortSignal.timeout(1000) });
        const text = await res.text();
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const samples = parsePrometheus(text);
        if (s.samples) s.prev = { at: s.at, samples: s.samples };
        s.samples = samples;
        s.figures = figuresOf(samples, s.prev?.samples, s.prev ? (at - s.prev.at) / 1000 : 0);
      } catch (err) {
        s.figures = { ...emptyFigures(), error: `metrics unreadable: ${errorMessage(err)}` };
      } finally {
        s.at = at;
        s.pending = undefined;
      }
    })();
    return s.pending;
  }
}

function emptyFigures(): NodeFigures {
  return {
    fpsIn: null,
    fpsOut: null,
    segments: 0,
    dropped: {},
    malformed: 0,
    outboxDepth: null,
    reconnects: null,
  };
}
