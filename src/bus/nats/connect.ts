/**
 * A node's NATS connection from {@linkcode NatsSettings} (MSight's `MSIGHT_NATS_*`): user/password, token, NKey
 * seed, user JWT (with the seed), a `.creds` file, TLS with CA / client certificate. It reconnects forever (backing
 * off to 2 s) and logs one line per state change; an unreachable or refusing server at startup is one fatal line.
 * Unlike MSight, which prints its connect options (password included), nothing secret reaches the log: the
 * secrets are registered with the logger before connecting.
 *
 * @example
 * ```ts
 * import { connectNats } from "./connect.ts";
 * import type { NatsSettings } from "../select.ts";
import { connectGuarded } from "./transport.ts";
 * import type { Logger } from "../../runtime/log.ts";
 * declare const settings: NatsSettings, log: Logger;
 * const nc = await connectNats(settings, log, { name: "video_dumper" });
 * await nc.conn.drain();
 * ```
 * @module
 */

import {
  type Authenticator,
  credsAuthenticator,
  jwtAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  type NodeConnectionOptions,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
} from "@nats-io/transport-node";
import { errorMessage, FatalError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { NatsSettings } from "../select.ts";
import { connectGuarded } from "./transport.ts";

/** The connect options for `settings`; reads the `.creds` file when one is named. */
export function natsConnectOptions(s: NatsSettings, name: string): NodeConnectionOptions {
  const enc = new TextEncoder();
  const auth: Authenticator[] = [];
  if (s.credsFile) {
    let creds: Uint8Array;
    try {
      creds = Deno.readFileSync(s.credsFile);
    } catch (err) {
      throw new FatalError(`cannot read MSIGHT_NATS_USER_CREDENTIALS ${s.credsFile}: ${errorMessage(err)}`);
    }
    auth.push(credsAuthenticator(creds));
  } else if (s.userJwt) {
    auth.push(jwtAuthenticator(s.userJwt, s.nkeySeed ? enc.encode(s.nkeySeed) : undefined));
  } else if (s.nkeySeed) auth.push(nkeyAuthenticator(enc.encode(s.nkeySeed)));
  if (s.user) auth.push(usernamePasswordAuthenticator(s.user, s.pass));
  if (s.token) auth.push(tokenAuthenticator(s.token));
  return {
    servers: s.servers,
    name: name.replace(/[^A-Za-z0-9_.:-]/g, "_"),
    authenticator: auth.length > 0 ? auth : undefined,
    tls: s.tls ? { caFile: s.tls.caFile, certFile: s.tls.certFile, keyFile: s.tls.keyFile } : undefined,
    // Keep retrying forever, backing off to 2 s: an edge box outlives many server restarts.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 2000,
  };
}

/** A connection and its state, for `/readyz`. */
export interface NatsLink {
  conn: NatsConnection;
  /** True while connected (false while reconnecting). */
  readonly ready: boolean;
  /** The largest message the server accepts (its `max_payload`). */
  readonly maxPayload: number;
}

/** Connects, waiting up to `connectTimeoutS`; see the module doc. */
export async function connectNats(
  s: NatsSettings,
  log: Logger,
  opts: { name?: string; connectTimeoutS?: number } = {},
): Promise<NatsLink> {
  for (const secret of [s.pass, s.token, s.nkeySeed, s.userJwt]) log.addSecret(secret);
  const name = opts.name ?? "msight-node";
  let conn: NatsConnection;
  try {
    conn = await connectGuarded({
      ...natsConnectOptions(s, name),
      timeout: (opts.connectTimeoutS ?? 10) * 1000,
    });
  } catch (err) {
    if (err instanceof FatalError) throw err;
    const why = errorMessage(err);
    const hint = /auth/i.test(why)
      ? "check MSIGHT_NATS_USERNAME/_PASSWORD, _TOKEN, _NKEY_SEED, _USER_JWT or _USER_CREDENTIALS"
      : "start nats-server or set MSIGHT_NATS_SERVERS or --bus-url";
    throw new FatalError(`cannot connect to NATS at ${s.display} (${why}): ${hint}`);
  }
  let ready = true;
  const link: NatsLink = {
    conn,
    get ready() {
      return ready && !conn.isClosed();
    },
    get maxPayload() {
      return conn.info?.max_payload ?? 1024 * 1024;
    },
  };
  // One line per state change; the loop ends when the connection closes.
  (async () => {
    for await (const st of conn.status()) {
      if (st.type === "disconnect" && ready) {
        ready = false;
        log.warn(`NATS connection lost (${st.server}): reconnecting`);
      } else if (st.type === "reconnect") {
        ready = true;
        log.info(`NATS connection restored (${st.server})`);
      } else if (st.type === "error") {
        log.warn(`NATS: ${errorMessage(st.error)}`);
      }
    }
  })().catch((err) => log.debug(`NATS status loop ended: ${errorMessage(err)}`));
  return link;
}
