/**
 * One interop run: MSight 2.0.2's Python nodes and ours started on one data plane (a Redis, a Redis Cluster or a
 * NATS server, see `InteropPlane`) beside the real RTSP test camera, and the two directions that every plane is
 * tested in (`msightRtspToOurs`, `ourRtspToMsight`). `interop_test.ts` (one Redis, four directions) and
 * `interop_backends_test.ts` (NATS and a Redis Cluster) build on it.
 *
 * @example
 * ```ts
 * import { InteropRun, type InteropPlane, msightRtspToOurs } from "./interop_run.ts";
 * declare const plane: InteropPlane;
 * const run = new InteropRun(plane, "/tmp/interop", "rtsp://127.0.0.1:8554/interop.stream");
 * try {
 *   await msightRtspToOurs(run, { tag: "a", aggFps: 10 });
 * } finally {
 *   await run.stopAll();
 * }
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { isoMicros } from "../../src/bus/describe.ts";
import { DENO, type NodeProcess, startNode, startProcess } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { MSIGHT_PYTHONPATH, PYTHON } from "./msight.ts";
import {
  assertSameIds,
  ffmpegWarnings,
  outOfOrder,
  type Saved,
  saved,
  type Tap,
  type Tapped,
} from "./interop_util.ts";

/** MSight's aggregators and ours cut segments of this many frames. */
export const BUFFER = 20;
/** Frames each source publishes before it is stopped (a little over two segments of 20). */
export const FRAMES = 46;

/** A data plane a test started, with the variables each side is configured by. */
export interface InteropPlane {
  /** For our nodes. */
  env: Record<string, string>;
  /** For MSight's nodes: MSight's variables for the same plane. */
  msightEnv: Record<string, string>;
  /** Records every frame published on a topic. */
  tap(topic: string): Promise<Tap>;
  /** How many clients subscribed to a topic (MSight's nodes print nothing when they subscribe). */
  subscribers(topic: string): Promise<number>;
}

/** The processes of one run, which it stops at the end, and what the directions need to start and watch them. */
export class InteropRun {
  readonly procs: NodeProcess[] = [];
  readonly #oursEnv: Record<string, string>;
  readonly #msEnv: Record<string, string>;

  constructor(readonly plane: InteropPlane, readonly root: string, readonly camUrl: string) {
    this.#oursEnv = { MSIGHT_EDGE_DEVICE_NAME: "test-device", ...plane.env };
    this.#msEnv = {
      ...plane.msightEnv,
      MSIGHT_EDGE_DEVICE_NAME: "msight-device",
      PYTHONPATH: MSIGHT_PYTHONPATH,
      PYTHONDONTWRITEBYTECODE: "1",
    };
  }

  /** Starts one of MSight's nodes (`cli.<module>`). */
  msight(module: string, args: string[]): NodeProcess {
    const p = startProcess(PYTHON, ["-u", "-m", `cli.${module}`, ...args], this.#msEnv, this.root);
    this.procs.push(p);
    return p;
  }

  /** Starts one of our nodes; `env` adds to the plane's variables. */
  ours(script: string, args: string[], env: Record<string, string> = {}): NodeProcess {
    const p = startNode(script, args, { ...this.#oursEnv, ...env });
    this.procs.push(p);
    return p;
  }

  /** Sends `signal` and waits up to 10 s for the exit, then makes sure the process is gone. */
  async stopped(p: NodeProcess, signal: Deno.Signal): Promise<void> {
    p.kill(signal);
    await Promise.race([p.exit, new Promise((r) => setTimeout(r, 10_000))]);
    await p.stop();
  }

  /** Waits until each topic has a subscriber. */
  subscribed(topics: string[], what: string): Promise<void> {
    return waitFor(
      async () => (await Promise.all(topics.map((x) => this.plane.subscribers(x)))).every((n) => n > 0),
      30_000,
      what,
      200,
    );
  }

  /** Status both ways: MSight's `status` lists each node RUNNING, and so does ours (one shared registry). */
  async statusBothWays(names: string[]): Promise<void> {
    const ms = this.msight("status", []);
    assert.equal(await ms.exit, 0, ms.stderr.join("\n"));
    const table = ms.stdout.join("\n");
    for (const n of names) {
      assert.match(
        table,
        new RegExp(`\\|\\s*${n}\\s*\\|.*\\|\\s*RUNNING\\s*\\|`),
        `MSight's status: ${n}\n${table}`,
      );
    }
    const st = startProcess(DENO, ["run", "-A", "nodes/status.ts", "--json"], this.#oursEnv);
    this.procs.push(st);
    assert.equal(await st.exit, 0, st.stderr.join("\n"));
    const nodes = JSON.parse(st.stdout.join("\n")).nodes as { name: string; judged: string }[];
    for (const n of names) {
      assert.equal(nodes.find((x) => x.name === n)?.judged, "RUNNING", `our status: ${n}`);
    }
  }

  /** Starts a source, lets it publish {@linkcode FRAMES} frames, stops it; returns the frames as published. */
  async runSource(
    topic: string,
    begin: () => NodeProcess,
    stopSignal: Deno.Signal,
    during?: () => Promise<void>,
  ): Promise<Tapped[]> {
    const tapped = await this.plane.tap(topic);
    try {
      const src = begin();
      await waitFor(() => tapped.frames.length >= FRAMES, 60_000, `${FRAMES} frames on ${topic}`).catch(
        (e) => {
          throw new Error(`${e.message}\n${src.stderr.slice(-20).join("\n")}`);
        },
      );
      if (during) await during();
      await this.stopped(src, stopSignal);
      await new Promise((r) => setTimeout(r, 500)); // the last publishes land
      return [...tapped.frames];
    } finally {
      await tapped.close();
    }
  }

  /** Stops every process the run started. */
  async stopAll(): Promise<void> {
    for (const p of this.procs) await p.stop();
  }
}

/**
 * MSight rtsp → our aggregator → our dumper, with status both ways. Every frame MSight published is in a segment
 * once, byte-exact, except those MSight sent after a later one (its publishing threads, under load): those our
 * aggregator drops as late and counts, and the count is checked.
 */
export async function msightRtspToOurs(
  run: InteropRun,
  o: {
    /** Names this direction's topics, nodes and folder. */
    tag: string;
    /** Our aggregator's `--fps`. */
    aggFps: number;
    /** More flags for our aggregator. */
    aggArgs?: string[];
  },
): Promise<void> {
  const { tag } = o;
  const dir = `${run.root}/${tag}`,
    images = `${tag}_images`,
    video = `${tag}_video`,
    sensor = `ms_cam_${tag}`;
  const dumper = run.ours("nodes/dumper.ts", ["-n", `our_dumper_${tag}`, "-st", video, "-sd", dir]);
  const metricsPort = freePort();
  const agg = run.ours("nodes/aggregator.ts", [
    ...["-n", `our_agg_${tag}`, "-st", images, "-pt", video, "--metrics-port", String(metricsPort)],
    ...["--fps", String(o.aggFps), "--buffer-size", String(BUFFER), "--overlap-size", "0", "--max-idle", "2"],
    ...o.aggArgs ?? [],
  ]);
  await Promise.all([
    dumper.waitForLine(new RegExp(`reading ${video}`), 30_000),
    run.subscribed([images], "our aggregator subscribed"),
  ]);
  const frames = await run.runSource(
    images,
    () =>
      run.msight("launch_rtsp", [
        ...["-n", `ms_rtsp_${tag}`, "-pt", images, "--sensor-name", sensor, "-u", run.camUrl],
        ...["--rtsp-transport", "tcp"],
      ]),
    "SIGINT",
    () => run.statusBothWays([`our_agg_${tag}`, `our_dumper_${tag}`, `ms_rtsp_${tag}`]),
  );
  // MSight's frame ids are Snowflakes whose time is the Unix-epoch millisecond of the frame.
  for (const f of frames) assert.ok(Math.abs(Number(f.id >> 22n) / 1000 - f.t) < 1, `id ${f.id} at ${f.t}`);
  const late = outOfOrder(frames);
  const want = frames.filter((f) => !late.includes(f)).map((f) => f.id);
  const accounted = () =>
    fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text()).then((m) =>
      m.split("\n").filter((l) => l.startsWith("msight_frames_accounted_total"))
    );
  let segs: Saved[] = [];
  await waitFor(
    async () => {
      segs = await saved(dir, ".json");
      return segs.flatMap((s) => s.ids).length >= want.length;
    },
    30_000,
    "every frame in a saved segment",
  ).catch(async (e) => {
    // Which frames are missing, why the aggregator says it did not use them, and the capture-time gaps of
    // MSight's source (stamped when PyAV hands a frame over: bursts after a stall show here).
    const kept = new Set(segs.flatMap((s) => s.ids));
    const lost = frames.flatMap((f, i) => kept.has(f.id) ? [] : [i]).join(",");
    const gaps = frames.slice(1).map((f, i) => Math.round((f.t - frames[i].t) * 1000)).join(",");
    const why = await accounted().then((l) => l.join("; ")).catch((err) => `no metrics: ${err}`);
    throw new Error(
      `${e.message}: ${kept.size} of ${want.length} (+${late.length} late), missing #${lost} (${why}); ` +
        `gaps (ms) ${gaps}\n${agg.stderr.slice(-20).join("\n")}`,
    );
  });
  assertSameIds(segs.flatMap((s) => s.ids), want, `MSight rtsp → ours (${tag})`);
  const lateLine = (await accounted()).find((l) => l.includes('outcome="late"') && l.includes(`"${sensor}"`));
  assert.equal(
    Number(lateLine?.split(" ").at(-1) ?? 0),
    late.length,
    "MSight's out-of-order frames, counted as late",
  );
  for (const s of segs) {
    assert.equal(await ffmpegWarnings(s.mp4), "", s.mp4);
    assert.deepEqual([s.meta.codec, s.meta.width, s.meta.height], ["h264", 1280, 960]);
    assert.equal(s.meta.start_source, "capture_timestamps");
    assert.equal(s.meta.start, isoMicros((s.meta.capture_timestamps as number[])[0]));
    assert.equal(s.meta.frame_count, s.ids.length);
    assert.ok((s.meta.fps as number) > 0 && (s.meta.duration as number) > 0);
    assert.equal(s.meta.sensor_name, sensor);
  }
  await run.stopped(agg, "SIGTERM");
  await run.stopped(dumper, "SIGTERM");
}

/**
 * Our rtsp → MSight aggregator (libx264) → MSight dumper. MSight publishes only full segments (its partial one is
 * lost at stop: MSight's behaviour), so the frames of the full ones are checked, byte-exact and in order, with
 * their capture times.
 */
export async function ourRtspToMsight(run: InteropRun, o: { tag: string }): Promise<void> {
  const { tag } = o;
  const dir = `${run.root}/${tag}`,
    images = `${tag}_images`,
    video = `${tag}_video`,
    sensor = `our_cam_${tag}`;
  const dumper = run.msight("launch_video_local_dumper", [
    "-n",
    `ms_dumper_${tag}`,
    "-st",
    video,
    "-sd",
    dir,
  ]);
  const agg = run.msight("launch_image_to_video_aggregator", [
    ...["-n", `ms_agg_${tag}`, "-st", images, "-pt", video],
    ...["--fps", "10", "--buffer-size", String(BUFFER), "--overlap-size", "0", "--codec", "libx264"],
  ]);
  await run.subscribed([images, video], "MSight's aggregator and dumper subscribed");
  const frames = await run.runSource(
    images,
    () =>
      run.ours("nodes/rtsp.ts", ["-n", `our_rtsp_${tag}`, "-pt", images, "-sn", sensor, "-u", run.camUrl]),
    "SIGTERM",
  );
  const full = Math.floor(frames.length / BUFFER);
  assert.ok(full >= 2);
  let segs: Saved[] = [];
  await waitFor(
    async () => {
      segs = await saved(dir, "_metadata.json");
      return segs.length >= full;
    },
    60_000,
    `${full} MSight segments`,
  ).catch((e) => {
    throw new Error(`${e.message}\n${[...agg.stderr, ...dumper.stderr].slice(-30).join("\n")}`);
  });
  assertSameIds(
    segs.flatMap((s) => s.ids),
    frames.slice(0, full * BUFFER).map((f) => f.id),
    `ours → MSight (${tag})`,
  );
  for (const s of segs) {
    assert.equal(await ffmpegWarnings(s.mp4), "", s.mp4);
    assert.equal(s.meta.sensor_name, sensor);
    assert.deepEqual(s.meta.capture_timestamps, frames.filter((f) => s.ids.includes(f.id)).map((f) => f.t));
  }
  await run.stopped(agg, "SIGTERM");
  await run.stopped(dumper, "SIGTERM");
}
