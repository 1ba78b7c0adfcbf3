/**
 * The node's HTTP endpoint (`--metrics-port`): `/metrics` in Prometheus text format, `/healthz` (the process is
 * alive and its event loop answers) and `/readyz` (200 only while the node is connected and its work flows, as
 * each node defines it; 503 with the reason otherwise).
 *
 * @example
 * ```ts
 * import { HealthServer } from "./health_server.ts";
 * import { Metrics } from "./metrics.ts";
 * const srv = HealthServer.start({ host: "127.0.0.1", port: 9464, metrics: new Metrics(), ready: () => ({ ok: true }) });
 * await srv.close();
 * ```
 * @module
 */

import type { Metrics } from "./metrics.ts";
import { FatalError } from "./errors.ts";

/** Readiness as the node judges it; `reason` says what is missing when not ok. */
export interface Readiness {
  ok: boolean;
  reason?: string;
}

/** Options of {@linkcode HealthServer.start}. */
export interface HealthServerOptions {
  host: string;
  /** 0 picks a free port (see {@linkcode HealthServer.port}). */
  port: number;
  metrics: Metrics;
  ready: () => Readiness;
}

/** The running HTTP endpoint; close it on shutdown. */
export class HealthServer {
  private constructor(readonly server: Deno.HttpServer<Deno.NetAddr>, readonly port: number) {}

  /** Starts listening; a port in use is a one-line fatal error. */
  static start(opts: HealthServerOptions): HealthServer {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({ hostname: opts.host, port: opts.port, onListen: () => {} }, (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/metrics") {
          return new Response(opts.metrics.render(), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        }
        if (path === "/healthz") return new Response("ok\n");
        if (path === "/readyz") {
          const r = opts.ready();
          return new Response(r.ok ? "ready\n" : `not ready: ${r.reason ?? "starting"}\n`, {
            status: r.ok ? 200 : 503,
          });
        }
        return new Response("not found: try /metrics, /healthz or /readyz\n", { status: 404 });
      });
    } catch (err) {
      throw new FatalError(
        `--metrics-port ${opts.port}: cannot listen on ${opts.host}:${opts.port} (${
          (err as Error).message.split("\n")[0]
        })`,
      );
    }
    return new HealthServer(server, server.addr.port);
  }

  /** Stops listening. */
  async close(): Promise<void> {
    await this.server.shutdown();
  }
}
