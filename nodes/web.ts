/**
 * The web console: one page with every node of the registry and its health, live camera previews from the bus, the
 * recordings of dumper directories (playable, with their `.json`) and a 24-hour timeline of what was recorded.
 * Read-only, on loopback unless given a token:
 *
 * ```sh
 * deno task web -n console --save-dir ./received_videos --port 8080
 * ```
 * @module
 */

import { Intake } from "../src/bus/intake.ts";
import { IMAGE_DATA_TYPE } from "../src/bus/message.ts";
import { runNode } from "../src/node/run_node.ts";
import { checkWebFlags, parseMetricsUrls, splitList, WEB_FLAGS } from "../src/node/web_flags.ts";
import { FatalError } from "../src/runtime/errors.ts";
import { NodesView } from "../src/web/nodes_view.ts";
import { Previews } from "../src/web/previews.ts";
import { RecordingsIndex } from "../src/web/recordings.ts";
import { S3Recordings } from "../src/web/s3_recordings.ts";
import { WebServer } from "../src/web/server.ts";
import { readToken } from "../src/web/token.ts";

if (import.meta.main) {
  await runNode({
    command: "web",
    type: "WebConsoleNode",
    description: "Serve a read-only web console: nodes, live cameras, recordings and their timeline.",
    flags: WEB_FLAGS,
    validate: (f) => {
      checkWebFlags(f);
      parseMetricsUrls(f.metricsUrls);
    },
    async run(ctx) {
      const f = ctx.flags;
      const token = await readToken(f.authToken, f.authTokenFile);
      const intakes = new Map<string, Intake>();
      const intakeFor = (topic: string) => {
        let i = intakes.get(topic);
        if (!i) {
          i = new Intake({ topic, log: ctx.log, metrics: ctx.metrics, accept: [IMAGE_DATA_TYPE] });
          intakes.set(topic, i);
        }
        return i;
      };
      const previews = new Previews(ctx.bus, intakeFor);
      const views = {
        nodes: new NodesView(ctx.bus, parseMetricsUrls(f.metricsUrls), f.staleAfter),
        previews,
        recordings: new RecordingsIndex(splitList(f.saveDir)),
        s3: f.s3Bucket
          ? S3Recordings.open({
            bucket: f.s3Bucket,
            prefix: f.prefix,
            region: f.awsRegion,
            endpointUrl: f.endpointUrl,
            forcePathStyle: f.forcePathStyle,
          })
          : undefined,
        previewFps: f.previewFps,
      };
      let server: WebServer;
      try {
        server = WebServer.start({
          host: f.host,
          port: f.port,
          log: ctx.log,
          views,
          token,
          requests: ctx.metrics.counter("web_requests_total", "HTTP requests answered, by status class"),
        });
      } catch (err) {
        throw new FatalError(`cannot listen on ${f.host}:${f.port} (${(err as Error).message})`);
      }
      const refresh = async () => {
        try {
          await previews.refreshTopics();
        } catch (err) {
          ctx.reportError(err, "reading MSIGHT:TOPICS");
        }
      };
      await refresh();
      const timer = setInterval(refresh, 5000);
      const shown = f.host.includes(":") ? `[${f.host}]` : f.host;
      ctx.log.info(`console on http://${shown}:${server.port}/${token ? " (token required)" : ""}`);
      for (const d of views.recordings.dirs) ctx.log.info(`browsing recordings in ${d} (read-only)`);
      if (views.s3) ctx.log.info(`browsing recordings in ${views.s3.target} (read-only)`);
      await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      clearInterval(timer);
      await server.close();
      await previews.close();
      views.s3?.close();
    },
  });
}
