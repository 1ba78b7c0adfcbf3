/**
 * The console's HTTP server (`Deno.serve`): the page, its JSON API and the recorded files. Read-only: only `GET`
 * and `HEAD` are answered (405 otherwise), nothing changes anything. With a token every request must carry it
 * (`Authorization: Bearer`, the cookie set by `/?token=`, or `?token=`), compared in constant time. Bad requests get
 * a 4xx and one line of text: unknown paths 404, bad ranges 416, long URLs 414, bodies 413; an unexpected error is
 * logged and answered 500 without detail.
 *
 * Routes: `/` the page, `/app.js`, `/api/config`, `/api/nodes`, `/api/cameras`, `/api/preview?topic=&sensor=`,
 * `/api/recordings`, `/api/timeline?window=SECONDS`, `/files/<dir>/<stem>.(mp4|json)[?download]`,
 * `/s3/<key>.(mp4|json)[?download]`.
 *
 * @example
 * ```ts
 * import { type Views, WebServer } from "./server.ts";
 * declare const log: import("../runtime/log.ts").Logger;
 * declare const views: Views;
 * const server = WebServer.start({ host: "127.0.0.1", port: 8080, log, views });
 * await server.close();
 * ```
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { Counter } from "../runtime/metrics.ts";
import { errorMessage } from "../runtime/errors.ts";
import type { NodesView } from "./nodes_view.ts";
import type { Previews } from "./previews.ts";
import type { RecordingsIndex, Segment } from "./recordings.ts";
import type { S3Recordings } from "./s3_recordings.ts";
import { buildTimeline } from "./timeline.ts";
import { resolveUnder } from "./safe_path.ts";
import { serveFile } from "./files.ts";
import { APP_JS, PAGE_HTML } from "./page.ts";

/** Longest URL answered (anything longer is 414). */
export const MAX_URL_LENGTH = 2048;
/** Most segments `/api/recordings` returns (newest first). */
export const MAX_LISTED = 2000;

/** What the server shows. */
export interface Views {
  nodes: NodesView;
  previews: Previews;
  recordings: RecordingsIndex;
  /** The pusher's bucket, when `--s3-bucket` is given. */
  s3?: S3Recordings;
  previewFps: number;
}

/** Options of {@linkcode WebServer.start}. */
export interface WebServerOptions {
  host: string;
  port: number;
  log: Logger;
  views: Views;
  /** When set, every request needs it. */
  token?: string;
  /** Counts requests by status class. */
  requests?: Counter;
}

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy":
    "default-src 'self'; img-src 'self' blob:; media-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
};

function text(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...extra },
  });
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

/** Constant-time comparison of two strings (the token). */
export function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k !== name) continue;
    try {
      return decodeURIComponent(v.join("="));
    } catch {
      return undefined; // not percent-encoding: not our cookie, so no token (401)
    }
  }
  return undefined;
}

/**
 * One server's warnings about faults that last (S3 or the registry away, a camera's frames unshowable): logged when
 * they change, not once per request of a page that polls.
 */
class Warnings {
  #last = new Map<string, string>();
  constructor(readonly log: Logger) {}
  warn(kind: string, msg: string): void {
    if (this.#last.get(kind) !== msg) this.log.warn(msg);
    this.#last.set(kind, msg);
  }
  clear(kind: string): void {
    this.#last.delete(kind);
  }
}

/** Local and S3 segments, newest first; S3 trouble is reported beside the local ones, not instead of them. */
async function allSegments(
  v: Views,
  warnings: Warnings,
): Promise<{ all: Segment[]; s3Error: string | null }> {
  const local = await v.recordings.list();
  if (!v.s3) return { all: local, s3Error: null };
  try {
    const remote = await v.s3.list();
    warnings.clear("s3");
    return { all: [...local, ...remote].sort((a, b) => b.start - a.start), s3Error: null };
  } catch (err) {
    const msg = `cannot list ${v.s3.target}: ${errorMessage(err)}`;
    warnings.warn("s3", msg);
    return { all: local, s3Error: msg };
  }
}

/** The running server. */
export class WebServer {
  private constructor(readonly server: Deno.HttpServer<Deno.NetAddr>, readonly port: number) {}

  /** Listens; throws when the address is taken (the caller turns that into a one-line error). */
  static start(opts: WebServerOptions): WebServer {
    const warnings = new Warnings(opts.log);
    const server = Deno.serve({ hostname: opts.host, port: opts.port, onListen: () => {} }, async (req) => {
      let res: Response;
      try {
        res = await handle(req, opts, warnings);
      } catch (err) {
        opts.log.error(`request ${req.method} ${new URL(req.url).pathname} failed: ${errorMessage(err)}`);
        res = text(500, "internal error (logged by the console)");
      }
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.headers.set(k, v);
      opts.requests?.inc(1, { code: `${Math.floor(res.status / 100)}xx` });
      return res;
    });
    return new WebServer(server, server.addr.port);
  }

  /** Stops listening and ends open responses. */
  async close(): Promise<void> {
    await this.server.shutdown();
  }
}

async function handle(req: Request, opts: WebServerOptions, warnings: Warnings): Promise<Response> {
  if (req.url.length > MAX_URL_LENGTH) return text(414, `URL longer than ${MAX_URL_LENGTH} characters`);
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, `${req.method} is not allowed: this console is read-only`, { allow: "GET, HEAD" });
  }
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > 0 || req.headers.has("transfer-encoding")) {
    return text(413, "a GET carries no body");
  }
  const url = new URL(req.url);
  if (opts.token !== undefined) {
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
    const given = bearer ?? url.searchParams.get("token") ?? cookie(req, "msight_token");
    if (given === undefined || given === null || !sameSecret(given, opts.token)) {
      return text(
        401,
        "this console needs its token: open /?token=TOKEN once, or send Authorization: Bearer",
        {
          "www-authenticate": 'Bearer realm="msight"',
        },
      );
    }
    if (url.pathname === "/" && url.searchParams.has("token")) {
      // Trade the token in the address bar for a cookie, so it leaves the history and the page's own requests.
      return new Response(null, {
        status: 303,
        headers: {
          location: "/",
          "set-cookie": `msight_token=${encodeURIComponent(opts.token)}; HttpOnly; SameSite=Strict; Path=/`,
        },
      });
    }
  }
  const v = opts.views;
  const p = url.pathname;
  if (p === "/" || p === "/index.html") {
    return new Response(PAGE_HTML, { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  if (p === "/app.js") {
    return new Response(APP_JS, { headers: { "content-type": "text/javascript; charset=utf-8" } });
  }
  if (p === "/api/config") {
    return json({ previewFps: v.previewFps, saveDirs: v.recordings.dirs.length, s3: v.s3?.target ?? null });
  }
  if (p === "/api/nodes") {
    let rows;
    try {
      rows = await v.nodes.snapshot();
      warnings.clear("registry");
    } catch (err) {
      // The registry away: the page says so and asks again; the console rides the outage out like every node.
      const msg = `cannot read MSIGHT:NODES: ${errorMessage(err)}`;
      warnings.warn("registry", msg);
      return text(503, msg);
    }
    return json(rows);
  }
  if (p === "/api/cameras") return json(v.previews.cameras());
  if (p === "/api/preview") {
    const img = await v.previews.image(
      url.searchParams.get("topic") ?? "",
      url.searchParams.get("sensor") ?? "",
    )
      .catch((err) => {
        // A frame that cannot be shown (raw pixels not matching its size): logged once per kind, answered 404.
        const msg = `cannot show a frame of ${url.searchParams.get("sensor")}: ${errorMessage(err)}`;
        warnings.warn("preview", msg);
        return undefined;
      });
    if (!img) return text(404, "no frame from this camera (yet)");
    const headers = { "content-type": img.type, etag: img.etag, "cache-control": "no-cache" };
    if (req.headers.get("if-none-match") === img.etag) return new Response(null, { status: 304, headers });
    // The bytes are a view of the message the bus client received (an ArrayBuffer, never shared memory).
    return new Response(req.method === "HEAD" ? null : img.body as Uint8Array<ArrayBuffer>, { headers });
  }
  if (p === "/api/recordings") {
    const { all, s3Error } = await allSegments(v, warnings);
    return json({ total: all.length, segments: all.slice(0, MAX_LISTED), s3Error });
  }
  if (p === "/api/timeline") {
    const w = Number(url.searchParams.get("window") ?? "86400");
    if (!Number.isFinite(w) || w < 60 || w > 7 * 86400) {
      return text(400, `window=${url.searchParams.get("window")} is invalid: expected 60 to 604800 seconds`);
    }
    return json(buildTimeline((await allSegments(v, warnings)).all, Date.now() / 1000, { windowS: w }));
  }
  if (p.startsWith("/s3/") && v.s3) {
    let key: string;
    try {
      key = p.slice(4).split("/").map(decodeURIComponent).join("/");
    } catch {
      return text(400, "bad percent-encoding in the path");
    }
    return await v.s3.serve(req, key, url.searchParams.has("download"));
  }
  const m = /^\/files\/(\d{1,3})\/(.+)$/.exec(p);
  if (m) {
    const dir = v.recordings.dirs[Number(m[1])];
    let rel: string;
    try {
      rel = decodeURIComponent(m[2]);
    } catch {
      return text(400, "bad percent-encoding in the path");
    }
    if (dir === undefined || !/\.(mp4|json)$/.test(rel)) return text(404, "no such recording");
    const path = await resolveUnder(dir, rel);
    if (path === null) return text(404, "no such recording");
    return await serveFile(req, path, url.searchParams.has("download"));
  }
  return text(404, `no such page: ${p.slice(0, 100)}`);
}
