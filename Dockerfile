# syntax=docker/dockerfile:1
# msight-edge: the four MSight video nodes and the status/echo tools as compiled binaries, on Debian slim with
# ffmpeg, run as a non-root user. One image for every node: the command names the binary (see docker-compose.yml).
#
#   docker build -t msight-edge .                              # the nodes (target runtime, the default)
#   docker build -t msight-edge-camera --target demo-camera .  # the demo RTSP camera (GStreamer, Mcity frames)
#   docker run --rm msight-edge msight_launch_video_local_dumper --help
#
# System packages come from scripts/image-install.sh, the script scripts/setup.sh (so CI) also installs with;
# test/packaging/image_test.ts checks its package names against Debian bookworm's archive and this file against
# docker-compose.yml, since Docker itself cannot run on our build machines.
ARG DEBIAN=bookworm

# --- build: Deno and the npm packages as scripts/setup.sh installs them, then `deno task compile` -------------
FROM node:20-${DEBIAN}-slim AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY scripts/ scripts/
RUN scripts/setup.sh build
COPY src/ src/
COPY nodes/ nodes/
# The dumper and pusher may write only these directories (compile-time grants: see scripts/compile_plan.ts);
# compile downloads the denort runtime here, where the build has internet.
RUN .tools/node_modules/.bin/deno task compile --out-dir /out \
      --save-dir /var/lib/msight/videos --spool-dir /var/lib/msight/spool

# --- demo-camera: tools/rtsp_demo_server.py serving the Mcity frames over RTSP on :8554 ------------------
FROM debian:${DEBIAN}-slim AS demo-camera
COPY scripts/image-install.sh /tmp/image-install.sh
RUN /tmp/image-install.sh --clean camera && rm /tmp/image-install.sh
COPY tools/rtsp_demo_server.py /opt/msight-camera/tools/
COPY test/fixtures/mcity-gs-ne/ /opt/msight-camera/test/fixtures/mcity-gs-ne/
USER nobody
EXPOSE 8554
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["/usr/bin/python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8554), 2)"]
# TCP only: the GStreamer server crashed with TCP and UDP clients on one media.
CMD ["/usr/bin/python3", "/opt/msight-camera/tools/rtsp_demo_server.py", "--host", "0.0.0.0", "--port", "8554", \
     "--source", "mcity", "--protocols", "tcp"]

# --- runtime: the nodes --------------------------------------------------------------------------------------
FROM debian:${DEBIAN}-slim AS runtime
COPY scripts/image-install.sh /tmp/image-install.sh
RUN /tmp/image-install.sh --clean runtime && rm /tmp/image-install.sh
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/msight --create-home --shell /usr/sbin/nologin msight \
 && mkdir -p /var/lib/msight/videos /var/lib/msight/spool \
 && chown -R msight:msight /var/lib/msight
COPY --from=build /out/ /usr/local/bin/
USER msight
WORKDIR /var/lib/msight
VOLUME ["/var/lib/msight/videos", "/var/lib/msight/spool"]
# Start a node with --metrics-port 9100 (or set MSIGHT_HEALTH_PORT) so the health check can reach /healthz.
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${MSIGHT_HEALTH_PORT:-9100}/healthz" >/dev/null || exit 1
# The nodes flush on SIGTERM (aggregator: partial segment; pusher: outbox drain): give them time, e.g.
# `docker stop -t 40` or compose's stop_grace_period. tini as PID 1 forwards the signal to the node and reaps any
# orphaned ffmpeg; the node itself is the compiled binary, not `deno task` (which does not forward SIGTERM).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["msight_launch_video_local_dumper", "--help"]
