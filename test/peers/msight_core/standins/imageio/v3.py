"""`imwrite("<bytes>", frames, fps=, codec=, extension=".mp4")` as imageio's ffmpeg path does it: raw RGB frames
piped into an ffmpeg subprocess (imageio-ffmpeg's arguments: rawvideo rgb24 in, `-pix_fmt yuv420p`, sizes scaled
up to multiples of 16 as its macro_block_size does), the MP4 returned as bytes."""
import os
import subprocess
import tempfile


def imwrite(uri, frames, *, fps=10, codec="libx264", extension=".mp4", **_ignored):
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to write")
    h, w = frames[0].shape[:2]
    w16, h16 = -(-w // 16) * 16, -(-h // 16) * 16
    fd, path = tempfile.mkstemp(suffix=extension)
    os.close(fd)
    try:
        args = ["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{w}x{h}",
                "-pix_fmt", "rgb24", "-r", f"{fps:.02f}", "-i", "-", "-an", "-vcodec", codec, "-pix_fmt", "yuv420p"]
        if (w16, h16) != (w, h):
            args += ["-vf", f"scale={w16}:{h16}"]
        if codec == "libx265":
            args += ["-x265-params", "log-level=error"]
        args += [path]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE)
        for f in frames:
            proc.stdin.write(f.tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise IOError(f"ffmpeg exited with {proc.returncode}")
        with open(path, "rb") as fh:
            data = fh.read()
    finally:
        os.remove(path)
    if uri == "<bytes>":
        return data
    with open(uri, "wb") as fh:
        fh.write(data)
    return None
