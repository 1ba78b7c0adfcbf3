/**
 * The loop of a group member on a durable topic, the same on every back end: take over entries a dead member left
 * (where the back end needs asking), read, hand each entry to the handler, and acknowledge it only once the handler
 * resolved (the segment is safe). A failed handler leaves its entry unacknowledged, to be delivered again; an
 * unreachable back end is waited out. While a handler runs, the entry is touched so no other member takes it over.
 * The acknowledgements of a batch overlap the next handlers (each still sent only once its own handler resolved)
 * and are all confirmed before the next read.
 *
 * @example
 * ```ts
 * import { consumeDurable } from "./durable_loop.ts";
 * import type { Bus } from "./types.ts";
 * import type { Logger } from "../runtime/log.ts";
 * declare const bus: Bus, log: Logger, signal: AbortSignal;
 * declare function save(bytes: Uint8Array): Promise<void>;
 * const c = bus.segments.consumer("aggregated_video", { group: "video_dumper", consumer: "video_dumper", log });
 * await consumeDurable(c, async (e) => await save(e.bytes), { signal, log });
 * await c.close();
 * ```
 * @module
 */

import { errorMessage } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { DurableConsumer, DurableEntry } from "./types.ts";

/** Handles one entry; resolve only once it is safe (it is then acknowledged), throw to have it delivered again. */
export type DurableHandler = (entry: DurableEntry) => Promise<void>;

/** Options of {@linkcode consumeDurable}. */
export interface ConsumeOptions {
  signal: AbortSignal;
  log: Logger;
  /** Take over entries another member held unacknowledged this long (it probably died). */
  claimIdleMs?: number;
  /** Entries per read. */
  batch?: number;
  /** How long one read waits for new entries, so a stop is noticed promptly. */
  blockMs?: number;
  /** Pause after an error (back end down, handler failed) before trying again. */
  retryMs?: number;
  /** Told of each error (a read that failed, or a handler that threw, with the entry). */
  onError?: (err: unknown, entry?: DurableEntry) => void;
}

/** Counts of one run of {@linkcode consumeDurable}. */
export interface ConsumeStats {
  acked: number;
  failed: number;
}

/** Runs until `signal` aborts; returns after the entry in hand is handled. */
export async function consumeDurable(
  consumer: DurableConsumer,
  handler: DurableHandler,
  opts: ConsumeOptions,
): Promise<ConsumeStats> {
  const { signal } = opts;
  const stats: ConsumeStats = { acked: 0, failed: 0 };
  const idle = opts.claimIdleMs ?? 60_000;
  const batch = opts.batch ?? 8;
  let lastClaim = 0;
  const pause = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        r();
      }
      signal.addEventListener("abort", done, { once: true });
    });

  const handle = async (entries: DurableEntry[]): Promise<boolean> => {
    // Acknowledgements of the entries handled so far: sent as each handler resolves, not awaited one by one (a
    // round trip each), and all awaited, in order, before this batch is done; one that fails throws from here.
    const acks: Promise<void>[] = [];
    const ack = (entry: DurableEntry) => {
      const p = consumer.ack(entry).then(() => void stats.acked++);
      p.catch(() => {/* thrown where it is awaited, below */});
      acks.push(p);
    };
    const settle = async () => {
      for (const p of acks) await p;
    };
    for (const entry of entries) {
      if (signal.aborted) break;
      if (entry.bytes.byteLength === 0) {
        // Its data was trimmed away (the topic's caps) before this group read it: nothing to store.
        opts.log.warn(`entry ${entry.id} was dropped by the topic's caps before it was read: skipped`);
        ack(entry);
        continue;
      }
      // Keep the entry ours while a slow handler (a large upload) runs.
      const keep = setInterval(
        () => void consumer.touch(entry).catch((e) => opts.log.debug(`touch: ${errorMessage(e)}`)),
        Math.max(1000, Math.floor(idle / 3)),
      );
      try {
        await handler(entry);
      } catch (err) {
        stats.failed++;
        opts.onError?.(err, entry);
        await settle();
        return false;
      } finally {
        clearInterval(keep);
      }
      ack(entry);
    }
    await settle();
    return true;
  };

  while (!signal.aborted) {
    try {
      if (Date.now() - lastClaim >= Math.min(idle, 10_000)) {
        lastClaim = Date.now();
        const taken = await consumer.claim(idle, batch);
        if (taken.length > 0) {
          opts.log.warn(
            `took over ${taken.length} entr${taken.length === 1 ? "y" : "ies"} left by another member`,
          );
          if (!await handle(taken)) await pause(opts.retryMs ?? 2000);
          continue;
        }
      }
      const entries = await consumer.read(batch, opts.blockMs ?? 1000);
      if (!await handle(entries)) await pause(opts.retryMs ?? 2000);
    } catch (err) {
      if (signal.aborted) break;
      opts.onError?.(err);
      await pause(opts.retryMs ?? 2000);
    }
  }
  return stats;
}
