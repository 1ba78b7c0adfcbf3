/**
 * The web console put together: previews following the bus's ImageData topics (looked up again every
 * {@linkcode TOPIC_REFRESH_MS}), the registry view, the recordings of the save directories and the bucket, and the
 * HTTP server; {@linkcode WebConsole.close} stops all of it. The `web` node maps its flags onto these options. The
 * bus is seen only through its interface ({@linkcode Bus}), so the console runs on every back end.
 *
 * @example
 * ```ts
 * import { startConsole } from "./console.ts";
 * declare const bus: import("../bus/types.ts").Bus;
 * declare const log: import("../runtime/log.ts").Logger;
 * declare const metrics: import("../runtime/metrics.ts").Metrics;
 * const web = await startConsole({ bus, log, metrics, host: "127.0.0.1", port: 8080, saveDirs: ["./videos"],
 *   metricsUrls: new Map(), staleAfterS: 15, previewFps: 2 });
 * await web.close();
 * ```
 * @module
 */

import { Intake } from "../bus/intake.ts";
import { IMAGE_DATA_TYPE } from "../bus/message.ts";
import type { Bus } from "../bus/types.ts";
import { errorMessage, FatalError, UsageError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { NodesView } from "./nodes_view.ts";
import { Previews } from "./previews.ts";
import { RecordingsIndex } from "./recordings.ts";
import { type S3Location, S3Recordings } from "./s3_recordings.ts";
import { WebServer } from "./server.ts";

/** How often the console looks for new camera topics. */
export const TOPIC_REFRESH_MS = 5000;

/** What the console shows and where it listens. */
export interface ConsoleOptions {
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  host: string;
  port: number;
  /** Every request needs it when set. */
  token?: string;
  saveDirs: string[];
  s3?: S3Location;
  metricsUrls: ReadonlyMap<string, string>;
  staleAfterS: number;
  previewFps: number;
}

/** A running console. */
export interface WebConsole {
  /** The port it listens on (the one asked for, or the one chosen for port 0). */
  port: number;
  close(): Promise<void>;
}

/** Starts the console; a port in use is a one-line {@linkcode FatalError}. */
export async function startConsole(o: ConsoleOptions): Promise<WebConsole> {
  await checkSaveDirs(o.saveDirs, o.log);
  const intakes = new Map<string, Intake>();
  const intakeFor = (topic: string) => {
    let i = intakes.get(topic);
    if (!i) {
      i = new Intake({ topic, log: o.log, metrics: o.metrics, accept: [IMAGE_DATA_TYPE] });
      intakes.set(topic, i);
    }
    return i;
  };
  const previews = new Previews(o.bus, intakeFor);
  const s3 = o.s3 ? S3Recordings.open(o.s3) : undefined;
  let server: WebServer;
  try {
    server = WebServer.start({
      host: o.host,
      port: o.port,
      log: o.log,
      token: o.token,
      requests: o.metrics.counter("web_requests_total", "HTTP requests answered, by status class"),
      views: {
        nodes: new NodesView(o.bus, o.metricsUrls, o.staleAfterS),
        previews,
        recordings: new RecordingsIndex(o.saveDirs),
        s3,
        previewFps: o.previewFps,
      },
    });
  } catch (err) {
    s3?.close();
    throw new FatalError(`cannot listen on ${o.host}:${o.port} (${errorMessage(err)})`);
  }
  let lastError = "";
  const refresh = async () => {
    try {
      await previews.refreshTopics();
      lastError = "";
    } catch (err) {
      // The registry away for a moment: the previews keep what they have, and the next refresh tries again.
      const msg = `cannot read MSIGHT:TOPICS: ${errorMessage(err)}`;
      if (msg !== lastError) o.log.warn(msg);
      lastError = msg;
    }
  };
  await refresh();
  const timer = setInterval(refresh, TOPIC_REFRESH_MS);
  return {
    port: server.port,
    async close() {
      clearInterval(timer);
      await server.close();
      await previews.close();
      s3?.close();
    },
  };
}

/** A `--save-dir` that is a file is a usage error; one that does not exist yet is shown empty, with a warning. */
async function checkSaveDirs(dirs: string[], log: Logger): Promise<void> {
  for (const d of dirs) {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(d);
    } catch (err) {
      const why = err instanceof Deno.errors.NotFound
        ? "does not exist (yet)"
        : `cannot be read (${errorMessage(err)})`;
      log.warn(`--save-dir ${d} ${why}: its recordings appear once a dumper writes there`);
      continue;
    }
    if (!st.isDirectory) {
      throw new UsageError(`--save-dir ${d} is not a directory: give a dumper's --save-dir`);
    }
  }
}
