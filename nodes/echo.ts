/**
 * `echo -st TOPIC`: prints one line per message on a topic (type, sensor, capture time, size, frame_id), or with
 * `--rate` the message rate and bandwidth of the topic every second, like `ros2 topic hz`.
 *
 * @example
 * ```sh
 * deno task echo -st rtsp_topic
 * deno task echo -st aggregated_video --rate
 * ```
 * @module
 */

import { Intake } from "../src/bus/intake.ts";
import { runAnyBusNode } from "../src/node/run_node.ts";
import { describeMessage } from "../src/bus/describe.ts";
import { ECHO_FLAGS } from "../src/node/echo_flags.ts";

if (import.meta.main) {
  await runAnyBusNode({
    command: "echo",
    type: "EchoNode",
    description: "Print the messages of a topic, or its rate and bandwidth.",
    flags: ECHO_FLAGS,
    async run(ctx) {
      const { subscribeTopic: topic, rate, count } = ctx.flags;
      const intake = new Intake({ topic, log: ctx.log, metrics: ctx.metrics, gap: ctx.flags.gap });
      const out = (line: string) => console.log(line);
      let n = 0, bytes = 0, total = 0;
      const done = Promise.withResolvers<void>();
      ctx.signal.addEventListener("abort", () => done.resolve(), { once: true });
      await ctx.bus.subscribe(topic, (raw) => {
        const msg = intake.decode(raw);
        if (!msg) return;
        n++, bytes += raw.length, total++;
        if (!rate) out(describeMessage(msg, raw.length));
        if (count > 0 && total >= count) done.resolve();
      });
      ctx.setReadiness(() => ({ ok: true }));
      ctx.log.info(`listening on ${topic}${rate ? " (rate every second)" : ""}`);
      let last = performance.now();
      const timer = rate
        ? setInterval(() => {
          const now = performance.now(), dt = (now - last) / 1000;
          out(
            `${topic}: ${(n / dt).toFixed(1)} msg/s, ${(bytes / dt / 1e6).toFixed(2)} MB/s, ${total} total`,
          );
          n = 0, bytes = 0, last = now;
        }, 1000)
        : undefined;
      await done.promise;
      clearInterval(timer);
    },
  });
}
