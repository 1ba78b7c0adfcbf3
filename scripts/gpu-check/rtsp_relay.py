#!/usr/bin/env python3
"""Minimal RTSP server (stdlib only): serves one H.264 RTP stream over RTSP/TCP interleaved.

An RTP sender (ffmpeg -f rtp rtp://127.0.0.1:UDP -sdp_file S) pushes RTP to UDP (RTCP to UDP+1); this server
answers OPTIONS / DESCRIBE (that SDP, with control URLs) / SETUP (RTP/AVP/TCP interleaved only) / PLAY /
GET_PARAMETER / SET_PARAMETER / TEARDOWN, and forwards each RTP (RTCP) packet to every playing client as
'$' 0x00 (0x01) <len16> <packet>. Any path is accepted.

usage: rtsp_relay.py --rtsp-port 8554 --udp-port 5004 --sdp x.sdp

Origin: the GPU check run on an NVIDIA H200 for issue 16 (written by a session of this project, same licence as the
project); copied unchanged but for this paragraph. Used by scripts/gpu-check.sh, where no GStreamer is installed.
"""
import argparse, os, queue, socket, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--rtsp-port", type=int, required=True)
ap.add_argument("--udp-port", type=int, required=True)
ap.add_argument("--sdp", required=True)
ap.add_argument("--host", default="127.0.0.1")
args = ap.parse_args()

clients = set()  # playing clients
clients_lock = threading.Lock()
stats = {"rtp": 0, "rtcp": 0}


def log(msg):
    print(f"[rtsp_relay:{args.rtsp_port}] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def load_sdp():
    for _ in range(200):  # the sender writes the file when it starts
        if os.path.exists(args.sdp) and os.path.getsize(args.sdp) > 0:
            break
        time.sleep(0.05)
    lines = [l.strip() for l in open(args.sdp).read().splitlines() if l.strip()]
    out, media = [], False
    for l in lines:
        if l.startswith("SDP:"):
            continue
        if l.startswith("c="):
            l = "c=IN IP4 0.0.0.0"
        if l.startswith("m="):
            if not media:
                out.append("a=control:*")
            media = True
            p = l.split()
            p[1] = "0"
            l = " ".join(p)
            out.append(l)
            out.append("a=control:trackID=0")
            continue
        if l.startswith("a=control"):
            continue
        out.append(l)
    return ("\r\n".join(out) + "\r\n").encode()


class Client:
    def __init__(self, conn, addr):
        self.conn, self.addr = conn, addr
        self.wlock = threading.Lock()
        self.q = queue.Queue(maxsize=4000)
        self.alive = True
        self.dropped = 0

    def send(self, data):
        with self.wlock:
            self.conn.sendall(data)

    def writer(self):
        try:
            while self.alive:
                item = self.q.get()
                if item is None:
                    break
                self.send(item)
        except OSError:
            pass
        self.alive = False

    def push(self, ch, pkt):
        try:
            self.q.put_nowait(b"$" + bytes([ch]) + len(pkt).to_bytes(2, "big") + pkt)
        except queue.Full:
            self.dropped += 1


def udp_forwarder(port, ch):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", port))
    while True:
        pkt, _ = s.recvfrom(65535)
        stats["rtp" if ch == 0 else "rtcp"] += 1
        with clients_lock:
            targets = list(clients)
        for c in targets:
            c.push(ch, pkt)


def handle(conn, addr):
    c = Client(conn, addr)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session = "%08X" % (int(time.time() * 1000) & 0xFFFFFFFF ^ (id(c) & 0xFFFFFFFF))
    buf = b""
    log(f"client {addr} connected")
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    raise EOFError
                buf += d
                if buf.startswith(b"$"):  # interleaved data from the client (RTCP receiver reports): skip it
                    while len(buf) >= 4 and buf.startswith(b"$"):
                        n = int.from_bytes(buf[2:4], "big")
                        if len(buf) < 4 + n:
                            break
                        buf = buf[4 + n:]
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, url, _ = (lines[0].split(" ") + ["", "", ""])[:3]
            h = {}
            for l in lines[1:]:
                if ":" in l:
                    k, v = l.split(":", 1)
                    h[k.strip().lower()] = v.strip()
            n = int(h.get("content-length", "0") or 0)
            while len(buf) < n:
                d = conn.recv(65536)
                if not d:
                    raise EOFError
                buf += d
            buf = buf[n:]
            cseq = h.get("cseq", "0")
            extra, body, status = [], b"", "200 OK"
            if method == "OPTIONS":
                extra.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, SET_PARAMETER, TEARDOWN")
            elif method == "DESCRIBE":
                body = load_sdp()
                base = url if url.endswith("/") else url + "/"
                extra += ["Content-Type: application/sdp", f"Content-Base: {base}"]
            elif method == "SETUP":
                tr = h.get("transport", "")
                if "TCP" not in tr.upper():
                    status = "461 Unsupported Transport"
                else:
                    extra += ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", f"Session: {session};timeout=60"]
            elif method == "PLAY":
                extra += [f"Session: {session}", "Range: npt=0.000-"]
            elif method in ("GET_PARAMETER", "SET_PARAMETER"):
                extra.append(f"Session: {session}")
            elif method == "TEARDOWN":
                extra.append(f"Session: {session}")
            else:
                status = "405 Method Not Allowed"
            resp = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: rtsp_relay.py\r\n" + "".join(
                e + "\r\n" for e in extra)
            resp += f"Content-Length: {len(body)}\r\n\r\n"
            c.send(resp.encode() + body)
            log(f"{addr} {method} {url} -> {status}")
            if method == "PLAY" and status.startswith("200"):
                threading.Thread(target=c.writer, daemon=True).start()
                with clients_lock:
                    clients.add(c)
            if method == "TEARDOWN":
                break
    except (EOFError, OSError):
        pass
    finally:
        c.alive = False
        with clients_lock:
            clients.discard(c)
        try:
            c.q.put_nowait(None)
        except queue.Full:
            pass
        conn.close()
        log(f"client {addr} gone (queue drops: {c.dropped})")


def main():
    threading.Thread(target=udp_forwarder, args=(args.udp_port, 0), daemon=True).start()
    threading.Thread(target=udp_forwarder, args=(args.udp_port + 1, 1), daemon=True).start()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.rtsp_port))
    srv.listen(16)
    log(f"listening on rtsp://{args.host}:{args.rtsp_port}/ (RTP from udp {args.udp_port})")
    while True:
        conn, addr = srv.accept()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


main()
