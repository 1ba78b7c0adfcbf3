/**
 * A small Prometheus metrics registry: counters, gauges and histograms with labels, rendered in the text exposition
 * format (version 0.0.4). Every node owns one {@linkcode Metrics}; modules register what they measure on it.
 *
 * @example
 * ```ts
 * import { Metrics } from "./metrics.ts";
 * const m = new Metrics("msight");
 * const frames = m.counter("frames_published_total", "Frames published on the bus");
 * frames.inc();
 * m.gauge("last_frame_age_seconds", "Seconds since the last frame", () => 0.04);
 * console.log(m.render());
 * ```
 * @module
 */

/** Label names and values of one series. */
export type Labels = Record<string, string>;

function labelKey(labels?: Labels): string {
  if (!labels) return "";
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  return "{" + keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(",") + "}";
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** A monotonically increasing count. */
export class Counter {
  #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(by = 1, labels?: Labels): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Sum over every label set. */
  total(): number {
    let s = 0;
    for (const v of this.#values.values()) s += v;
    return s;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.#values) lines.push(`${this.name}${k} ${fmt(v)}`);
    return lines.join("\n");
  }
}

/** A value that goes up and down; set it, or give a function read at scrape time. */
export class Gauge {
  #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string, readonly read?: () => number) {}
  set(v: number, labels?: Labels): void {
    this.#values.set(labelKey(labels), v);
  }
  inc(by = 1, labels?: Labels): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    if (this.read && !labels) return this.read();
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    if (this.read) lines.push(`${this.name} ${fmt(this.read())}`);
    for (const [k, v] of this.#values) lines.push(`${this.name}${k} ${fmt(v)}`);
    if (!this.read && this.#values.size === 0) lines.push(`${this.name} 0`);
    return lines.join("\n");
  }
}

/** A distribution of observed values in cumulative buckets (seconds, by convention). */
export class Histogram {
  #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ) {
    this.#counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.#sum += v;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.#counts[i]++;
  }
  get count(): number {
    return this.#count;
  }
  get sum(): number {
    return this.#sum;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${fmt(b)}"} ${this.#counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`);
    lines.push(`${this.name}_sum ${fmt(this.#sum)}`, `${this.name}_count ${this.#count}`);
    return lines.join("\n");
  }
}

type Metric = Counter | Gauge | Histogram;

/** The set of metrics of one node; names get the registry's prefix (`msight_` by default). */
export class Metrics {
  #metrics = new Map<string, Metric>();
  constructor(readonly prefix = "msight") {}

  #name(name: string): string {
    return this.prefix ? `${this.prefix}_${name}` : name;
  }

  #get<T extends Metric>(name: string, make: () => T): T {
    const full = this.#name(name);
    const existing = this.#metrics.get(full);
    if (existing) return existing as T;
    const m = make();
    this.#metrics.set(full, m);
    return m;
  }

  /** Returns the counter `name`, creating it on first use. */
  counter(name: string, help: string): Counter {
    return this.#get(name, () => new Counter(this.#name(name), help));
  }
  /** Returns the gauge `name`, creating it on first use; `read` makes it computed at scrape time. */
  gauge(name: string, help: string, read?: () => number): Gauge {
    return this.#get(name, () => new Gauge(this.#name(name), help, read));
  }
  /** Returns the histogram `name`, creating it on first use. */
  histogram(name: string, help: string, buckets?: number[]): Histogram {
    return this.#get(name, () => new Histogram(this.#name(name), help, buckets));
  }
  /** The whole registry in Prometheus text format. */
  render(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join("\n") + "\n";
  }
}
