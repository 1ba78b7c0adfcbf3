/**
 * The RTSP source node: pulls a camera stream with an ffmpeg subprocess and publishes each frame as MSight
 * ImageData (JPEG by default, or raw BGR) on `--publish-topic`. Same command as MSight's tutorial:
 *
 * ```sh
 * deno task rtsp -n rtsp_node -pt rtsp_topic --sensor-name rtsp_sensor -u rtsp://localhost:8554/live.stream -g 0 --rtsp-transport tcp
 * ```
 *
 * Data path: camera → ffmpeg (decode, scale, JPEG) → {@linkcode RtspCapture} (frames + capture times) → ImageData
 * → Redis. Frames are published one at a time, in order; if Redis is slower than the camera the capture queue drops
 * the oldest frames and counts them.
 * @module
 */

import { IMAGE_DATA_TYPE, type ImageData } from "../src/bus/message.ts";
import { encodeMessagePieces } from "../src/bus/wire.ts";
import { localIsoMicros } from "../src/bus/describe.ts";
import { describeCaptureEvent, RtspCapture } from "../src/capture/rtsp_capture.ts";
import { runNode } from "../src/node/run_node.ts";
import { checkRtspFlags, RTSP_FLAGS } from "../src/node/rtsp_flags.ts";

if (import.meta.main) {
  await runNode({
    command: "rtsp",
    type: "RTSPSourceNode",
    description: "Pull an RTSP camera stream with ffmpeg and publish its frames as MSight ImageData.",
    flags: RTSP_FLAGS,
    publishDataType: IMAGE_DATA_TYPE,
    validate: checkRtspFlags,
    async run(ctx) {
      const f = ctx.flags;
      const m = ctx.metrics;
      const published = m.counter("frames_published_total", "Frames published on the bus");
      const notPublished = m.counter(
        "frames_not_published_total",
        "Frames lost because Redis was unreachable",
      );
      const skipped = m.counter("frames_skipped_total", "Frames skipped by --gap");
      const publishSeconds = m.histogram("publish_seconds", "Time to encode and publish one frame", [
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
      ]);
      const capture = new RtspCapture({
        url: f.url,
        transport: f.rtspTransport,
        gpu: f.gpu,
        resizeRatio: f.resizeRatio,
        maxFps: f.maxFps,
        format: f.imageEncoding === "raw" ? "bgr24" : "jpeg",
        jpegQuality: f.jpegQuality,
        stallTimeoutS: f.stallTimeout,
        timeoutS: f.openTimeout,
        ffmpegPath: f.ffmpeg,
        onEvent: (e) => {
          const line = describeCaptureEvent(e);
          if (e.type === "cuda-unavailable" || e.type === "stalled" || e.type === "retrying") {
            ctx.log.warn(line);
          } else ctx.log.info(line);
        },
        onFfmpegLine: (l) => ctx.log.debug(`ffmpeg: ${"text" in l ? l.text : JSON.stringify(l)}`),
      });
      const stats = () => capture.stats();
      m.gauge("frames_received_total", "Frames received from the camera", () => stats().framesReceived);
      m.gauge(
        "frames_dropped_total",
        "Frames dropped because publishing fell behind the camera",
        () => stats().framesDropped,
      );
      m.gauge("reconnects_total", "Reconnections to the camera", () => stats().reconnects);
      m.gauge("stalls_total", "Times the camera went silent for --stall-timeout", () => stats().stalls);
      m.gauge("decode_errors_total", "Decoder errors reported by ffmpeg", () => stats().decodeErrors);
      m.gauge(
        "unpaired_frames_total",
        "Frames and ffmpeg frame reports that did not pair (frames then carry their read time)",
        () => stats().unpaired,
      );
      m.gauge("fps", "Frames per second received, smoothed", () => stats().fps);
      m.gauge("last_frame_age_seconds", "Seconds since the last frame (-1 before the first)", () => {
        const t = stats().lastFrameAt;
        return t === undefined ? -1 : Date.now() / 1000 - t;
      });
      m.gauge("cuda_decode", "1 while decoding with CUDA", () => (stats().cuda ? 1 : 0));
      ctx.setReadiness(() => {
        const s = stats();
        if (s.state !== "streaming") return { ok: false, reason: `camera ${s.state}` };
        const age = s.lastFrameAt === undefined ? Infinity : Date.now() / 1000 - s.lastFrameAt;
        return age < f.stallTimeout
          ? { ok: true }
          : { ok: false, reason: `no frame for ${age.toFixed(1)} s` };
      });

      await capture.start();
      ctx.signal.addEventListener("abort", () => void capture.stop(), { once: true });
      let n = 0;
      let lostWhileDown = 0;
      for await (const frame of capture) {
        if (ctx.signal.aborted) break;
        if (f.gap > 0 && n++ % (f.gap + 1) !== 0) {
          skipped.inc();
          continue;
        }
        const t0 = performance.now();
        const msg: ImageData = {
          dataType: IMAGE_DATA_TYPE,
          sensorName: f.sensorName,
          captureTimestamp: frame.captureTime,
          creationTimestamp: Date.now() / 1000,
          frameId: ctx.ids.next(),
          deviceName: ctx.device,
          image: frame.data,
          isEncoded: frame.format === "jpeg",
          detectionResults: null,
          size: [frame.height, frame.width, 3],
        };
        let receivers: number;
        try {
          // In pieces around the JPEG: the publisher copies them once, into a request buffer it reuses.
          receivers = await ctx.bus.publish(f.publishTopic, encodeMessagePieces(msg));
        } catch {
          receivers = -1;
        }
        publishSeconds.observe((performance.now() - t0) / 1000);
        if (receivers < 0) {
          notPublished.inc();
          if (ctx.signal.aborted) continue; // stopping (an ACL refusal stops the node: already said)
          if (lostWhileDown++ === 0) {
            ctx.log.warn("Redis is unreachable: frames are not published until it is back");
          }
          continue;
        }
        if (lostWhileDown > 0) {
          ctx.log.info(`publishing again after ${lostWhileDown} frame(s) lost while Redis was unreachable`);
          lostWhileDown = 0;
        }
        published.inc();
        if (f.frameLogEvery > 0 && published.get() % f.frameLogEvery === 0) {
          ctx.log.info(
            `Got image from ${f.sensorName}, the image shape is (${frame.height}, ${frame.width}, 3), time: ${
              localIsoMicros(frame.captureTime)
            }`,
          );
        }
      }
      await capture.stop();
    },
  });
}
