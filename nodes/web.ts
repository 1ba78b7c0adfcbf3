/**
 * The web console: one page with every node of the registry and its health, live camera previews from the bus, the
 * recordings of dumper directories and the pusher's bucket (playable, with their `.json`) and a 24-hour timeline of
 * what was recorded, on every back end of the bus. Read-only, on loopback unless given a token:
 *
 * ```sh
 * deno task web -n console --save-dir ./received_videos --port 8080
 * ```
 * @module
 */

import { runAnyBusNode } from "../src/node/run_node.ts";
import { checkWebFlags, parseMetricsUrls, splitList, WEB_FLAGS } from "../src/node/web_flags.ts";
import { startConsole } from "../src/web/console.ts";
import { readToken } from "../src/web/token.ts";

if (import.meta.main) {
  await runAnyBusNode({
    command: "web",
    type: "WebConsoleNode",
    description: "Serve a read-only web console: nodes, live cameras, recordings and their timeline.",
    flags: WEB_FLAGS,
    validate: (f) => {
      checkWebFlags(f);
      parseMetricsUrls(f.metricsUrls ?? "");
    },
    async run(ctx) {
      const f = ctx.flags;
      const token = await readToken(f.authToken, f.authTokenFile);
      const saveDirs = splitList(f.saveDir ?? "");
      const s3 = f.s3Bucket
        ? {
          bucket: f.s3Bucket,
          prefix: f.prefix,
          region: f.awsRegion,
          endpointUrl: f.endpointUrl,
          forcePathStyle: f.forcePathStyle,
        }
        : undefined;
      const web = await startConsole({
        bus: ctx.bus,
        log: ctx.log,
        metrics: ctx.metrics,
        host: f.host,
        port: f.port,
        token,
        saveDirs,
        s3,
        metricsUrls: parseMetricsUrls(f.metricsUrls ?? ""),
        staleAfterS: f.staleAfter,
        previewFps: f.previewFps,
      });
      const shown = f.host.includes(":") ? `[${f.host}]` : f.host;
      ctx.log.info(`console on http://${shown}:${web.port}/${token ? " (token required)" : ""}`);
      for (const d of saveDirs) ctx.log.info(`browsing recordings in ${d} (read-only)`);
      if (s3) ctx.log.info(`browsing recordings in s3://${s3.bucket}/${s3.prefix} (read-only)`);
      // A stop that came while starting has already fired its event: do not wait for another.
      if (!ctx.signal.aborted) {
        await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      }
      await web.close();
    },
  });
}
