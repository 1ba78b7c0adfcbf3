/**
 * A real headless browser for tests: Debian's `chromium` driven over the Chrome DevTools Protocol on a WebSocket,
 * which Deno has built in, so no npm package (puppeteer-core, playwright-core: megabytes and a version pin against
 * the browser) is needed for the few things the tests do: open a page, evaluate an expression, wait for a
 * condition, take a screenshot. Each browser gets a fresh profile directory, removed on close.
 *
 * @example
 * ```ts
 * import { launchChromium } from "./chromium.ts";
 * const browser = await launchChromium();
 * const page = await browser.newPage();
 * await page.goto("http://127.0.0.1:8080/");
 * console.log(await page.evaluate<string>("document.title"));
 * await browser.close();
 * ```
 * @module
 */

/** The system browser (the test profile of scripts/image-install.sh installs it). */
export const CHROMIUM = "/usr/bin/chromium";

/** True when the system browser is installed. */
export function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

type Json = Record<string, unknown>;

/** One tab. */
export interface Page {
  goto(url: string): Promise<void>;
  /** Evaluates `expression` in the page (promises awaited) and returns its JSON value; throws on an exception. */
  evaluate<T>(expression: string): Promise<T>;
  /** Polls `expression` until it is truthy; returns its value. */
  waitFor<T>(expression: string, timeoutMs?: number, what?: string): Promise<T>;
  /** Saves a PNG screenshot of the viewport. */
  screenshot(path: string): Promise<void>;
}

/** A running browser. */
export interface Browser {
  /** The browser's main process (its renderers are children of it). */
  readonly pid: number;
  newPage(width?: number, height?: number): Promise<Page>;
  close(): Promise<void>;
}

/** Starts headless Chromium with a fresh profile; stopped by {@linkcode Browser.close}. */
export async function launchChromium(): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "msight-chromium-" });
  const child = new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderrLines: string[] = [];
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    // A renderer may still be writing its profile as it dies; a leftover temp dir is harmless.
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  let ws: WebSocket;
  try {
    ws = await connect(child, stderrLines);
  } catch (err) {
    await kill(); // a browser that did not come up is not left running
    throw err;
  }
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  const listeners = new Set<(msg: Json) => void>();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data as string) as Json;
    if (typeof msg.id === "number") {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(`CDP: ${JSON.stringify(msg.error)}`));
      else p?.resolve((msg.result ?? {}) as Json);
    } else for (const l of listeners) l(msg);
  };
  const send = (method: string, params: Json = {}, sessionId?: string): Promise<Json> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });

  return {
    pid: child.pid,
    async newPage(width = 1280, height = 800) {
      const { targetId } = await send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true }) as {
        sessionId: string;
      };
      const call = (m: string, p: Json = {}) => send(m, p, sessionId);
      await call("Page.enable");
      await call("Runtime.enable");
      await call("Emulation.setDeviceMetricsOverride", {
        width,
        height,
        deviceScaleFactor: 1,
        mobile: false,
      });
      const page: Page = {
        async goto(url) {
          const loaded = new Promise<void>((resolve) => {
            const l = (msg: Json) => {
              if (msg.sessionId === sessionId && msg.method === "Page.loadEventFired") {
                listeners.delete(l);
                resolve();
              }
            };
            listeners.add(l);
          });
          const r = await call("Page.navigate", { url });
          if (r.errorText) throw new Error(`cannot open ${url}: ${r.errorText}`);
          await loaded;
        },
        async evaluate<T>(expression: string) {
          const r = await call("Runtime.evaluate", {
            expression,
            awaitPromise: true,
            returnByValue: true,
          }) as {
            result: { value?: T };
            exceptionDetails?: { text: string; exception?: { description?: string } };
          };
          if (r.exceptionDetails) {
            throw new Error(
              `${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`,
            );
          }
          return r.result.value as T;
        },
        async waitFor<T>(expression: string, timeoutMs = 15_000, what = expression) {
          const until = Date.now() + timeoutMs;
          let last: unknown;
          while (Date.now() < until) {
            last = await page.evaluate<T>(expression).catch((e) => e);
            if (last && !(last instanceof Error)) return last as T;
            await new Promise((r) => setTimeout(r, 200));
          }
          throw new Error(`not within ${timeoutMs} ms: ${what} (last: ${last})`);
        },
        async screenshot(path) {
          const { data } = await call("Page.captureScreenshot", { format: "png" }) as { data: string };
          await Deno.writeFile(path, Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
        },
      };
      return page;
    },
    async close() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([send("Browser.close"), new Promise((r) => (timer = setTimeout(r, 3000)))]);
      } catch {
        // The browser is going away either way; the kill below makes sure.
      } finally {
        clearTimeout(timer);
      }
      ws.close();
      await kill();
    },
  };
}

/** Waits for the browser's DevTools address on its stderr and opens the WebSocket to it. */
async function connect(child: Deno.ChildProcess, stderrLines: string[]): Promise<WebSocket> {
  const wsUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`chromium did not start:\n${stderrLines.join("\n")}`)),
      30_000,
    );
    (async () => {
      const dec = new TextDecoder();
      let buf = "";
      let found = false;
      for await (const chunk of child.stderr) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (stderrLines.length < 200) stderrLines.push(line);
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
          if (m && !found) {
            found = true;
            clearTimeout(timer);
            resolve(m[1]);
          }
        }
      }
      if (!found) clearTimeout(timer), reject(new Error(`chromium exited:\n${stderrLines.join("\n")}`));
    })();
  });
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot connect to ${wsUrl}`));
  });
  return ws;
}
