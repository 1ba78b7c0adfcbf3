/**
 * nats.js's Node transport with one defect guarded: a socket it has let go of can no longer end the process.
 *
 * When the server resets a connection (it refuses a login, or it is killed), the socket's read fails and Node's
 * stream layer schedules an `error` event for the next tick. In that same tick nats.js (`@nats-io/transport-node`
 * 3.4.0, `NodeTransport._closed` and `discard`) calls `removeAllListeners()` and `destroy()` on the socket, so the
 * event finds no listener and is thrown as an uncaught `read ECONNRESET`, ending the node. Here every socket the
 * transport holds keeps one listener through any `removeAllListeners()`. The errors it sees are already handled:
 * the transport reads the failure from the socket's `close`, and the client reconnects or rejects the connect.
 *
 * @example
 * ```ts
 * import { connectGuarded } from "./transport.ts";
 * const nc = await connectGuarded({ servers: "127.0.0.1:4222" });
 * await nc.drain();
 * ```
 * @module
 */

import type { Socket } from "node:net";
import {
  type NatsConnection,
  NatsConnectionImpl,
  type NodeConnectionOptions,
  setTransportFactory,
} from "@nats-io/transport-node";
import { nodeResolveHost, NodeTransport } from "@nats-io/transport-node/lib/node_transport.js";

/** The listener left on every socket: its errors are already handled through the socket's `close`. */
function ignoreLateError(_err: Error): void {}

/** Keeps {@linkcode ignoreLateError} on `socket`, also through `removeAllListeners()`. */
function guard(socket: Socket): void {
  if (socket.listeners("error").includes(ignoreLateError)) return;
  socket.on("error", ignoreLateError);
  const removeAll = socket.removeAllListeners;
  // Rest arguments: EventEmitter tells "remove all" from "remove those of event `undefined`" by arguments.length.
  socket.removeAllListeners = function (this: Socket, ...event: [(string | symbol)?]) {
    const out = removeAll.apply(this, event);
    if (event.length === 0 || event[0] === "error") this.on("error", ignoreLateError);
    return out;
  } as typeof socket.removeAllListeners;
}

/** `NodeTransport`, guarding each socket as it takes it (the dial, and the TLS upgrade that replaces it). */
class GuardedTransport extends NodeTransport {
  constructor() {
    super();
    let held: Socket | undefined;
    // `socket` is a class field of NodeTransport (an own data property): redefined here as an accessor.
    Object.defineProperty(this, "socket", {
      configurable: true,
      enumerable: true,
      get: () => held,
      set: (s: Socket | undefined) => {
        if (s) guard(s);
        held = s;
      },
    });
  }
}

/** `connect` of `@nats-io/transport-node`, on the guarded transport. */
export function connectGuarded(opts: NodeConnectionOptions): Promise<NatsConnection> {
  // The factory is process-wide in nats.js; every connection made here sets the same one.
  setTransportFactory({ factory: () => new GuardedTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(opts);
}
