#!/usr/bin/env python3
"""The GPU check of the RTSP node (stdlib only; started by scripts/gpu-check.sh, which finds the programs).

Runs a private Redis, one RTSP camera per clip (ffmpeg RTP push -> rtsp_relay.py), and per camera two RTSP nodes
side by side through bin/msight-launch (the nodes' scoped permissions): `-g 0` and `-g -1`; an aggregator with
`--codec h264_nvenc` on the first camera's CPU node. Over one window it reads each node's CPU (the node and its
ffmpeg, from /proc), its RSS and the frames it published, samples nvidia-smi's decoder use, and compares the
JPEGs of the two nodes of a camera (sha1). Prints one table; writes it and the logs to --out.

usage: check.py --app DIR --deno PATH --ffmpeg PATH --redis PATH --clip NAME=FILE [--clip ...] --out DIR
                [--warmup S] [--window S]
"""
import argparse, atexit, hashlib, json, os, shutil, signal, socket, struct, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--app", required=True, help="project root (bin/msight-launch, nodes/, src/)")
ap.add_argument("--deno", required=True)
ap.add_argument("--ffmpeg", required=True)
ap.add_argument("--redis", required=True)
ap.add_argument("--clip", action="append", required=True, help="NAME=FILE, an H.264 MP4 looped as a camera")
ap.add_argument("--out", required=True)
ap.add_argument("--warmup", type=float, default=20)
ap.add_argument("--window", type=float, default=40)
ap.add_argument("--gpu", type=int, default=0)
args = ap.parse_args()
os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
HERE = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
procs = []  # every process this script started, stopped at the end (atexit, also on an error or SIGTERM)


def log(msg):
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, cmd, env=None):
    f = open(os.path.join(args.out, "logs", name + ".log"), "wb")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                         cwd=args.app)
    procs.append((name, p, f))
    return p


def stop_all():
    for _, p, _ in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + 8
    for _, p, f in reversed(procs):
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        f.close()


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))


def run(cmd, timeout=60):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)


# ---------- facts: CUDA probe (the node's own command), NVDEC direct, nvidia-smi ----------
NVSMI = shutil.which("nvidia-smi")
rows = []  # (item, result)
code, out = run([args.ffmpeg, "-hide_banner", "-nostdin", "-init_hw_device", f"cuda=probe:{args.gpu}", "-f", "lavfi",
                 "-i", "nullsrc=s=64x64:d=0.1", "-frames:v", "1", "-f", "null", "-"], 30)
cuda_ok = code == 0
# ffmpeg's own reason (e.g. "Cannot load libcuda.so.1"), not its closing "Error parsing global options" line.
lines = [l.strip() for l in out.splitlines() if l.strip() and not l.startswith(" ")]
why = [l for l in lines if any(k in l.lower() for k in ("cannot load", "libcuda", "no device", "cuda_error"))][:1] \
    or lines[-1:] or ["?"]
rows.append(("CUDA probe (ffmpeg -init_hw_device cuda)", "ok" if cuda_ok else f"no GPU: {why[0][:90]}"))
first_clip = args.clip[0].split("=", 1)[1]
if cuda_ok:
    code, out = run([args.ffmpeg, "-hide_banner", "-nostdin", "-hwaccel", "cuda", "-hwaccel_device", str(args.gpu),
                     "-i", first_clip, "-frames:v", "50", "-f", "null", "-"], 60)
    rows.append(("NVDEC decode of clip 1 (ffmpeg -hwaccel cuda)", "ok" if code == 0 else f"failed: {out[-90:]}"))
else:
    rows.append(("NVDEC decode of clip 1 (ffmpeg -hwaccel cuda)", "no GPU: not tried"))
if NVSMI:
    code, out = run([NVSMI, "-L"], 20)
    rows.append(("nvidia-smi -L", out.strip().splitlines()[0][:90] if code == 0 and out.strip() else f"failed: {out[:80]}"))
else:
    rows.append(("nvidia-smi -L", "no GPU: nvidia-smi not found"))
rows.append(("LD_LIBRARY_PATH", os.environ.get("LD_LIBRARY_PATH") or "(unset)"))

# ---------- Redis, cameras ----------
redis_port = free_port()
start("redis", [args.redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--protected-mode", "no"])
cams = []
for i, spec in enumerate(args.clip):
    name, clip = spec.split("=", 1)
    udp, rtsp = free_port() & ~1, free_port()
    sdp = os.path.join(args.out, f"{name}.sdp")
    start(f"push_{name}", [args.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re", "-stream_loop",
                           "-1", "-i", clip, "-map", "0:v", "-c", "copy", "-f", "rtp", f"rtp://127.0.0.1:{udp}",
                           "-sdp_file", sdp])
    start(f"relay_{name}", [sys.executable, os.path.join(HERE, "rtsp_relay.py"), "--rtsp-port", str(rtsp),
                            "--udp-port", str(udp), "--sdp", sdp])
    cams.append((name, f"rtsp://127.0.0.1:{rtsp}/live.stream"))


# ---------- subscriber (RESP + a minimal MessagePack reader) ----------
def unpack(b):
    pos = 0

    def take(n):
        nonlocal pos
        v = b[pos:pos + n]
        pos += n
        return v

    def obj():
        t = take(1)[0]
        if t <= 0x7F: return t
        if t >= 0xE0: return t - 0x100
        if 0x80 <= t <= 0x8F: return {obj(): obj() for _ in range(t & 0x0F)}
        if 0x90 <= t <= 0x9F: return [obj() for _ in range(t & 0x0F)]
        if 0xA0 <= t <= 0xBF: return take(t & 0x1F).decode()
        if t == 0xC0: return None
        if t in (0xC2, 0xC3): return t == 0xC3
        if t in (0xC4, 0xC5, 0xC6): return bytes(take(int.from_bytes(take(1 << (t - 0xC4)), "big")))
        if t == 0xCA: return struct.unpack(">f", take(4))[0]
        if t == 0xCB: return struct.unpack(">d", take(8))[0]
        if 0xCC <= t <= 0xCF: return int.from_bytes(take(1 << (t - 0xCC)), "big")
        if 0xD0 <= t <= 0xD3: return int.from_bytes(take(1 << (t - 0xD0)), "big", signed=True)
        if t in (0xD9, 0xDA, 0xDB): return take(int.from_bytes(take(1 << (t - 0xD9)), "big")).decode()
        if t in (0xDC, 0xDD): return [obj() for _ in range(int.from_bytes(take(2 if t == 0xDC else 4), "big"))]
        if t in (0xDE, 0xDF): return {obj(): obj() for _ in range(int.from_bytes(take(2 if t == 0xDE else 4), "big"))}
        raise ValueError("msgpack type 0x%02x" % t)

    return obj()


got = {}  # topic -> [(time, sha1, message)]
got_lock = threading.Lock()


def subscriber(topics):
    s = None
    for _ in range(100):
        try:
            s = socket.create_connection(("127.0.0.1", redis_port))
            break
        except OSError:
            time.sleep(0.1)
    if s is None:
        log(f"cannot connect to redis-server on port {redis_port} (see logs/redis.log)")
        return
    req = [b"SUBSCRIBE"] + [t.encode() for t in topics]
    s.sendall(b"*%d\r\n" % len(req) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in req))
    f = s.makefile("rb", buffering=1 << 20)

    def read():
        line = f.readline()
        if not line:
            raise EOFError
        t, rest = line[:1], line[1:-2]
        if t == b"*": return [read() for _ in range(int(rest))]
        if t == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2]
        if t in (b":", b"+"): return rest
        raise RuntimeError(line)

    try:
        while True:
            m = read()
            if isinstance(m, list) and m[0] == b"message":
                topic, payload = m[1].decode(), m[2]
                try:
                    d = unpack(payload)
                except (ValueError, IndexError, UnicodeDecodeError) as e:
                    log(f"bad message on {topic}: {e}")
                    continue
                body = d.get("image") or d.get("video") or b""
                d.pop("image", None)
                d.pop("video", None)
                with got_lock:
                    got.setdefault(topic, []).append((time.time(), hashlib.sha1(body).hexdigest(), d))
    except (EOFError, OSError):
        pass


nodes = []  # dict(name, cam, gpu, topic, proc)
topics = [f"gc_{c}_{'g' if g >= 0 else 'c'}" for c, _ in cams for g in (args.gpu, -1)] + ["gc_video"]
threading.Thread(target=subscriber, args=(topics,), daemon=True).start()
time.sleep(1)
env = dict(os.environ, DENO=args.deno, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
           MSIGHT_EDGE_DEVICE_NAME="gpu-check", NO_COLOR="1", DENO_NO_UPDATE_CHECK="1")
launch = os.path.join(args.app, "bin", "msight-launch")
agg = start("aggregator", [launch, "aggregator", "-n", "gc_agg", "-st", f"gc_{cams[0][0]}_c", "-pt", "gc_video",
                           "--fps", "10", "--buffer-size", "20", "--overlap-size", "0", "--codec", "h264_nvenc"], env)
for cam, url in cams:
    for g in (args.gpu, -1):
        topic = f"gc_{cam}_{'g' if g >= 0 else 'c'}"
        p = start(f"node_{cam}_g{g}", [launch, "rtsp", "-n", f"rtsp_{cam}_g{g}", "-pt", topic, "--sensor-name",
                                        f"cam{cam}", "-u", url, "-g", str(g), "--rtsp-transport", "tcp"], env)
        nodes.append(dict(name=f"{cam} -g {g}", cam=cam, gpu=g, topic=topic, proc=p))


# ---------- measure ----------
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    r = s[s.rindex(")") + 2:].split()
    return dict(ppid=int(r[1]), cpu=int(r[11]) + int(r[12]), reaped=int(r[13]) + int(r[14]), rss=int(r[21]) * PAGE)


def tree(pid):
    """CPU ticks of pid, its reaped children and its live descendants; their RSS in bytes."""
    all_ = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                all_[int(d)] = stat(int(d))
            except (OSError, ValueError, IndexError):
                pass  # exited meanwhile
    if pid not in all_:
        return None
    cpu, rss, todo = all_[pid]["reaped"], 0, [pid]
    while todo:
        p = todo.pop()
        cpu += all_[p]["cpu"]
        rss += all_[p]["rss"]
        todo += [c for c, s in all_.items() if s["ppid"] == p]
    return cpu, rss


def published(topic, t0=None, t1=None):
    with got_lock:
        return [m for m in got.get(topic, []) if (t0 is None or m[0] >= t0) and (t1 is None or m[0] <= t1)]


t_start = time.time()
while time.time() - t_start < 90 and not all(published(n["topic"]) for n in nodes):
    if any(n["proc"].poll() is not None for n in nodes):
        break
    time.sleep(0.5)
log(f"streaming after {time.time() - t_start:.1f} s; warm-up {args.warmup} s, window {args.window} s")
time.sleep(args.warmup)
samples = []
stop = threading.Event()


def sampler():
    while not stop.is_set():
        c, o = run([NVSMI, "--query-gpu=utilization.gpu,utilization.decoder,utilization.encoder",
                    "--format=csv,noheader,nounits"], 10)
        if c == 0:
            try:
                samples.append([float(x) for x in o.strip().splitlines()[0].split(",")])
            except (ValueError, IndexError):
                pass  # a line nvidia-smi could not fill ([N/A]): no sample
        stop.wait(2)


if NVSMI:
    threading.Thread(target=sampler, daemon=True).start()
t0 = time.time()
c0 = {n["name"]: tree(n["proc"].pid) for n in nodes}
time.sleep(args.window)
t1 = time.time()
c1 = {n["name"]: tree(n["proc"].pid) for n in nodes}
stop.set()

# ---------- results ----------
res = {}
for n in nodes:
    a, b = c0[n["name"]], c1[n["name"]]
    frames = len(published(n["topic"], t0, t1))
    if a is None or b is None:
        res[n["name"]] = dict(frames=frames, ms=None, rss=None, alive=False)
        continue
    res[n["name"]] = dict(frames=frames, ms=(b[0] - a[0]) * 1000 / CLK / frames if frames else None,
                          rss=b[1] / 2**20, alive=True)


def node_log(n):
    with open(os.path.join(args.out, "logs", f"node_{n['cam']}_g{n['gpu']}.log"), errors="replace") as f:
        return f.read()


table = []
W = max(len(r[0]) for r in rows + [("JPEG equality, camera X (-g 0 vs -g -1)", "")])
for item, result in rows:
    table.append(f"{item:<{W}} | {result}")
table.append("")
table.append(f"{'camera':<8} | {'-g 0: frames':>12} {'CPU ms/f':>9} {'RSS MB':>7} | {'-g -1: frames':>13} "
             f"{'CPU ms/f':>9} {'RSS MB':>7} | {'ratio':>5} | -g 0 decoded on")
fmt = lambda x, f: "-" if x is None else f % x
for cam, _ in cams:
    g = res[f"{cam} -g {args.gpu}"]
    c = res[f"{cam} -g -1"]
    ratio = g["ms"] / c["ms"] if g["ms"] and c["ms"] else None
    text = node_log(next(n for n in nodes if n["cam"] == cam and n["gpu"] >= 0))
    on = "CPU (CUDA unavailable: fell back)" if "CUDA decode on GPU" in text and "unavailable" in text else "GPU"
    if not g["alive"]:
        on = "node exited (see logs)"
    table.append(f"{cam:<8} | {g['frames']:>12} {fmt(g['ms'], '%.2f'):>9} {fmt(g['rss'], '%.0f'):>7} | "
                 f"{c['frames']:>13} {fmt(c['ms'], '%.2f'):>9} {fmt(c['rss'], '%.0f'):>7} | "
                 f"{fmt(ratio, '%.2f'):>5} | {on}")
table.append("")
for cam, _ in cams:
    # The window's JPEGs (a node that connected first also has frames the other never saw).
    gs = [m[1] for m in published(f"gc_{cam}_g", t0, t1)]
    cs = {m[1] for m in published(f"gc_{cam}_c")}
    same = sum(1 for h in gs if h in cs)
    table.append(f"{'JPEG equality, camera ' + cam + ' (-g 0 vs -g -1)':<{W}} | "
                 f"{same} of {len(gs)} -g 0 JPEGs of the window byte-identical to a -g -1 JPEG")
segs = published("gc_video")
with open(os.path.join(args.out, "logs", "aggregator.log"), errors="replace") as f:
    agg_log = f.read()
warns = [l for l in agg_log.splitlines() if " - WARNING :: " in l]
if segs:
    d = segs[0][2]
    nv = f"first segment {d.get('codec')} by {d.get('encoder')}, {d.get('frame_count')} frames; " \
         f"{len(warns)} WARNING line(s)"
    if warns:
        nv += ": " + warns[0].split(" :: ", 1)[1][:100]
else:
    nv = f"no segment within the window; {len(warns)} WARNING line(s)"
table.append(f"{'NVENC (aggregator --codec h264_nvenc)':<{W}} | {nv}")
if samples:
    dec = [s[1] for s in samples]
    table.append(f"{'nvidia-smi decoder use in the window':<{W}} | mean {sum(dec) / len(dec):.0f} %, max "
                 f"{max(dec):.0f} % ({len(samples)} samples; GPU util mean "
                 f"{sum(s[0] for s in samples) / len(samples):.0f} %)")
else:
    table.append(f"{'nvidia-smi decoder use in the window':<{W}} | no GPU: "
                 f"{'no samples' if NVSMI else 'nvidia-smi not found'}")
header = (f"GPU check of the RTSP node, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.uname().nodename}, "
          f"{os.cpu_count()} cores; window {args.window:.0f} s after {args.warmup:.0f} s warm-up; CPU = node + its "
          f"ffmpeg, per published frame")
text = "\n".join([header, ""] + table)
print(text, flush=True)
with open(os.path.join(args.out, "gpu-check.txt"), "w") as f:
    f.write(text + "\n")
json.dump(dict(rows=rows, nodes=res, segments=len(segs), nvsmi=samples), open(os.path.join(args.out, "summary.json"), "w"),
          indent=1)
if not all(r["frames"] > 0 for r in res.values()):
    log(f"a node published no frame in the window: see {os.path.join(args.out, 'logs')}")
    sys.exit(1)
