/**
 * Live previews, read from the bus and never asked of the nodes: the console subscribes to every topic whose
 * `MSIGHT:TOPICS` data type is ImageData (checked again every few seconds, so new cameras appear), and keeps only
 * the latest frame of each (topic, sensor) with its capture time, measured frame rate and size. JPEG frames are
 * served as they are on the bus; a raw BGR frame is turned into a PNG once, when it is first shown.
 *
 * @example
 * ```ts
 * import { Previews } from "./previews.ts";
 * declare const bus: import("../bus/types.ts").Bus;
 * declare const intakeFor: (topic: string) => import("../bus/intake.ts").Intake;
 * const previews = new Previews(bus, intakeFor);
 * await previews.refreshTopics();
 * previews.cameras(); // CameraInfo[]
 * await previews.close();
 * ```
 * @module
 */

import type { Bus } from "../bus/types.ts";
import { IMAGE_DATA_TYPE, type ImageData } from "../bus/message.ts";
import type { Intake } from "../bus/intake.ts";
import { bgrToPng } from "./png.ts";

/** What the Cameras view shows of one sensor. */
export interface CameraInfo {
  topic: string;
  sensor: string;
  device: string;
  /** Id of the latest frame, as a decimal string (Snowflake ids exceed 2^53). */
  frameId: string;
  captureTimestamp: number;
  /** Frames per second over the last frames received. */
  fps: number;
  width: number;
  height: number;
  encoded: boolean;
  /** Frames received since the console started. */
  frames: number;
}

/** A frame ready to send. */
export interface PreviewImage {
  body: Uint8Array;
  type: "image/jpeg" | "image/png";
  etag: string;
}

interface Latest {
  msg: ImageData;
  topic: string;
  arrivals: number[];
  frames: number;
  png?: Promise<Uint8Array>;
  pngFor?: bigint;
}

/** Frames kept for the rate estimate. */
const RATE_WINDOW = 20;

/** The latest frame of every camera on the bus. */
export class Previews {
  #latest = new Map<string, Latest>();
  #topics = new Set<string>();
  #handler = (bytes: Uint8Array, topic: string) => this.#onMessage(bytes, topic);

  /** `intakeFor(topic)` decodes and counts a topic's messages (malformed ones are counted there, not here). */
  constructor(readonly bus: Bus, readonly intakeFor: (topic: string) => Intake) {}

  /** Subscribes to ImageData topics not yet followed; returns how many are followed. */
  async refreshTopics(): Promise<number> {
    const topics = await this.bus.registry.readTopics();
    for (const t of topics) {
      if (t.data_type !== IMAGE_DATA_TYPE || this.#topics.has(t.name)) continue;
      this.#topics.add(t.name);
      await this.bus.subscribe(t.name, this.#handler);
    }
    return this.#topics.size;
  }

  #onMessage(bytes: Uint8Array, topic: string): void {
    const msg = this.intakeFor(topic).decode(bytes);
    if (!msg || msg.dataType !== IMAGE_DATA_TYPE) return;
    const key = `${topic}\u0000${msg.sensorName}`;
    const entry = this.#latest.get(key) ?? { msg, topic, arrivals: [], frames: 0 };
    entry.msg = msg;
    entry.frames++;
    entry.arrivals.push(msg.captureTimestamp);
    if (entry.arrivals.length > RATE_WINDOW) entry.arrivals.shift();
    this.#latest.set(key, entry);
  }

  /** Every camera seen, by topic then sensor. */
  cameras(): CameraInfo[] {
    const out: CameraInfo[] = [];
    for (const e of this.#latest.values()) {
      const a = e.arrivals;
      const span = a.length > 1 ? a[a.length - 1] - a[0] : 0;
      out.push({
        topic: e.topic,
        sensor: e.msg.sensorName,
        device: e.msg.deviceName,
        frameId: String(e.msg.frameId),
        captureTimestamp: e.msg.captureTimestamp,
        fps: span > 0 ? (a.length - 1) / span : 0,
        width: e.msg.size[1],
        height: e.msg.size[0],
        encoded: e.msg.isEncoded,
        frames: e.frames,
      });
    }
    return out.sort((x, y) => x.topic.localeCompare(y.topic) || x.sensor.localeCompare(y.sensor));
  }

  /** The latest frame of a camera, or undefined when none has been seen. */
  async image(topic: string, sensor: string): Promise<PreviewImage | undefined> {
    const e = this.#latest.get(`${topic}\u0000${sensor}`);
    if (!e) return undefined;
    const msg = e.msg;
    const etag = `"${msg.frameId}"`;
    if (msg.isEncoded) return { body: msg.image, type: "image/jpeg", etag };
    if (e.pngFor !== msg.frameId) {
      const [h, w, c] = msg.size;
      e.pngFor = msg.frameId;
      e.png = bgrToPng(msg.image, w, h, c);
    }
    return { body: await e.png!, type: "image/png", etag };
  }

  /** Unsubscribes from every topic. */
  async close(): Promise<void> {
    for (const t of this.#topics) await this.bus.unsubscribe(t, this.#handler);
    this.#topics.clear();
  }
}
