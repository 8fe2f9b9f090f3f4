#!/usr/bin/python3
"""The rig test's VNC peer, run inside the rig next to the machine (Python standard library only:
the rig sees the host's /usr, nothing else).

  vnc_check.py type SOCKET TEXT    types TEXT, then Return, as X11 keysyms over RFB
  vnc_check.py frame SOCKET [SECS] reads full frames over RFB (Raw) until one shows text and the
                                   inverse-video bar the typed command printed (60 s at most)
  vnc_check.py keys SOCKET KEY...  presses and releases named keys (Down, Up, Return, Escape,
                                   F12 or one character), 0.5 s apart
  vnc_check.py png BEFORE AFTER    checks two `vireoctl screenshot` PNGs: valid, same size, the
                                   second not blank and different from the first
  vnc_check.py resize SOCKET WxH SECS  stays connected, asking for updates, until the server
                                   announces a desktop size of WxH (DesktopSize), as a viewer
                                   connected while the guest changes its mode sees it

Every failure prints "vnc-check: FAIL: why" and exits 1; every socket read is bounded (60 s;
`resize` waits up to its own deadline between messages).
"""
import socket
import struct
import sys
import time
import zlib
from collections import Counter


def die(msg):
    print(f"vnc-check: FAIL: {msg}", flush=True)
    sys.exit(1)


def recvn(s, n):
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except socket.timeout:
            die(f"the VNC server sent {len(buf)} of {n} bytes within 60 s")
        if not chunk:
            die(f"the VNC server closed the connection ({len(buf)} of {n} bytes)")
        buf += chunk
    return bytes(buf)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    try:
        s.connect(path)
    except OSError as e:
        die(f"connect {path}: {e}")
    version = recvn(s, 12)
    if not version.startswith(b"RFB 003."):
        die(f"not an RFB server: {version!r}")
    s.sendall(b"RFB 003.008\n")
    n = recvn(s, 1)[0]
    if n == 0:
        length = struct.unpack(">I", recvn(s, 4))[0]
        die("the server refused: " + recvn(s, length).decode(errors="replace"))
    types = recvn(s, n)
    if 1 not in types:
        die(f"no security type None on the private socket, only {list(types)}")
    s.sendall(b"\x01")
    if struct.unpack(">I", recvn(s, 4))[0] != 0:
        die("security handshake failed")
    s.sendall(b"\x01")  # ClientInit: shared
    w, h = struct.unpack(">HH", recvn(s, 4))
    recvn(s, 16)
    name = recvn(s, struct.unpack(">I", recvn(s, 4))[0]).decode(errors="replace")
    # 32 bits per pixel, depth 24, little endian, true colour 8:8:8 at 16/8/0; Raw only.
    s.sendall(struct.pack(">B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
    s.sendall(struct.pack(">BxHi", 2, 1, 0))
    return s, w, h, name


def type_text(path, text):
    s, w, h, name = connect(path)
    for ch in text + "\n":
        keysym = 0xFF0D if ch == "\n" else ord(ch)
        for down in (1, 0):
            s.sendall(struct.pack(">BBxxI", 4, down, keysym))
        # The i8042 queue holds 256 bytes and a nested guest may stall for a while: a slow,
        # steady typist never overflows it.
        time.sleep(0.06)
    s.close()
    print(f"vnc-check: typed {len(text) + 1} keys on '{name}' ({w}x{h})", flush=True)


KEYSYMS = {"Down": 0xFF54, "Up": 0xFF52, "Return": 0xFF0D, "Escape": 0xFF1B, "F12": 0xFFC9}


def press_keys(path, names):
    s, w, h, name = connect(path)
    for key in names:
        keysym = KEYSYMS.get(key, ord(key) if len(key) == 1 else None)
        if keysym is None:
            die(f"unknown key name {key!r}")
        for down in (1, 0):
            s.sendall(struct.pack(">BBxxI", 4, down, keysym))
            time.sleep(0.1)
        # Firmware and boot loaders poll the keyboard; give each key time to be seen alone.
        time.sleep(0.5)
    s.close()
    print(f"vnc-check: pressed {' '.join(names)} on '{name}' ({w}x{h})", flush=True)


def skip_message(s, t):
    """Reads past a server message other than a framebuffer update (type `t` already read)."""
    if t == 1:
        recvn(s, 1)
        n = struct.unpack(">HH", recvn(s, 4))[1]
        recvn(s, 6 * n)
    elif t == 2:
        pass
    elif t == 3:
        recvn(s, 3)
        recvn(s, struct.unpack(">I", recvn(s, 4))[0])
    else:
        die(f"unknown server message type {t}")


def read_frame(s, w, h):
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    fb = bytearray(w * h * 4)
    covered = 0
    while covered < w * h:
        t = recvn(s, 1)[0]
        if t == 0:
            n = struct.unpack(">xH", recvn(s, 3))[0]
            for _ in range(n):
                x, y, rw, rh, enc = struct.unpack(">HHHHi", recvn(s, 12))
                if enc != 0:
                    die(f"encoding {enc} sent although only Raw was asked for")
                if x + rw > w or y + rh > h:
                    die(f"rectangle {rw}x{rh}+{x}+{y} outside the {w}x{h} screen")
                data = recvn(s, rw * rh * 4)
                for r in range(rh):
                    o = ((y + r) * w + x) * 4
                    fb[o:o + rw * 4] = data[r * rw * 4:(r + 1) * rw * 4]
                covered += rw * rh
        else:
            skip_message(s, t)
    return fb


def wait_resize(path, want, secs):
    s, w, h, name = connect(path)
    print(f"vnc-check: connected to '{name}' at {w}x{h}, waiting for {want}", flush=True)
    # Raw and the DesktopSize pseudo-encoding.
    s.sendall(struct.pack(">BxHii", 2, 2, 0, -223))
    end = time.time() + secs
    sizes = []
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    while time.time() < end:
        # A still screen sends nothing while the request waits: silence between messages is
        # not a failure here, only the deadline is (a loaded rig was seen quiet for over 60 s
        # between GRUB's last frame and the kernel's first).
        s.settimeout(max(0.1, min(5.0, end - time.time())))
        try:
            first = s.recv(1)
        except socket.timeout:
            continue
        finally:
            s.settimeout(60)
        if not first:
            die("the VNC server closed the connection while the size was awaited")
        t = first[0]
        if t == 0:
            n = struct.unpack(">xH", recvn(s, 3))[0]
            for _ in range(n):
                x, y, rw, rh, enc = struct.unpack(">HHHHi", recvn(s, 12))
                if enc == -223:
                    w, h = rw, rh
                    sizes.append(f"{w}x{h}")
                    print(f"vnc-check: desktop size {w}x{h}", flush=True)
                    if f"{w}x{h}" == want:
                        s.close()
                        return
                elif enc == 0:
                    recvn(s, rw * rh * 4)
                else:
                    die(f"encoding {enc} sent although only Raw and DesktopSize were asked for")
            time.sleep(0.2)
            s.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, w, h))
        else:
            skip_message(s, t)
    die(f"no desktop size {want} within {secs} s (sizes announced: {sizes or 'none'})")


def analyze_frame(fb, w, h):
    rows = []
    total = Counter()
    for y in range(h):
        c = Counter(memoryview(fb)[y * w * 4:(y + 1) * w * 4].cast("I"))
        rows.append(c)
        total.update(c)
    bg = total.most_common(1)[0][0]
    ink = sum(w - c[bg] for c in rows)
    # The typed printf draws 80 inverse-video blanks: a run of 640 pixels of one colour (the
    # text colour) on every scan line of one character cell. Allow for a narrower font.
    run = 480
    bar = 0
    for y, c in enumerate(rows):
        fg = [(v, k) for v, k in c.most_common(2) if v != bg]
        if fg and fg[0][1] >= run:
            line = bytes(memoryview(fb)[y * w * 4:(y + 1) * w * 4])
            if struct.pack("=I", fg[0][0]) * run in line:
                bar += 1
    return bg, ink, bar


def check_frame(path, wait=60.0):
    """Reads frames until the screen shows text and the bar, for at most `wait` seconds (the
    guest draws at its own pace under nested virtualization)."""
    s, w, h, name = connect(path)
    deadline = time.monotonic() + wait
    while True:
        bg, ink, bar = analyze_frame(read_frame(s, w, h), w, h)
        if (ink >= 1000 and bar >= 8) or time.monotonic() > deadline:
            break
        time.sleep(1)
    s.close()
    print(f"vnc-check: frame of '{name}': {w}x{h}, background {bg:#08x}, "
          f"{ink} text pixels, {bar} scan lines of the printed bar", flush=True)
    if ink < 1000:
        die(f"the screen is (nearly) blank: {ink} pixels differ from the background")
    if bar < 8:
        die(f"the bar the typed command prints is not on the screen ({bar} scan lines)")


def png_rows(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        die(f"{path}: not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if ihdr is None:
        die(f"{path}: no IHDR")
    w, h, depth, ctype = ihdr[:4]
    if depth != 8 or ctype not in (2, 6):
        die(f"{path}: bit depth {depth}, colour type {ctype} (expected 8-bit RGB or RGBA)")
    raw = zlib.decompress(idat)
    stride = w * (3 if ctype == 2 else 4) + 1
    if len(raw) != stride * h:
        die(f"{path}: {len(raw)} bytes of scan lines, expected {stride * h}")
    return w, h, [raw[y * stride + 1:(y + 1) * stride] for y in range(h)]


def check_png(before, after):
    w0, h0, a = png_rows(before)
    w1, h1, b = png_rows(after)
    if (w0, h0) != (w1, h1):
        die(f"screenshot size changed: {w0}x{h0} then {w1}x{h1}")
    # With a black background every PNG filter gives zero bytes where nothing is drawn.
    ink = sum(len(r) - r.count(0) for r in b)
    changed = sum(1 for x, y in zip(a, b) if x != y)
    print(f"vnc-check: screenshots {w1}x{h1}: {ink} non-zero filtered bytes, "
          f"{changed} scan lines changed by the typed command", flush=True)
    if ink < 1000:
        die("the screenshot is (nearly) blank")
    if changed < 16:
        die(f"the typed command changed only {changed} scan lines of the screenshot")


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "type":
        type_text(args[1], args[2])
    elif len(args) == 2 and args[0] == "frame":
        check_frame(args[1])
    elif len(args) == 3 and args[0] == "frame":
        check_frame(args[1], float(args[2]))
    elif len(args) >= 3 and args[0] == "keys":
        press_keys(args[1], args[2:])
    elif len(args) == 3 and args[0] == "png":
        check_png(args[1], args[2])
    elif len(args) == 4 and args[0] == "resize":
        wait_resize(args[1], args[2], float(args[3]))
    else:
        die("usage: vnc_check.py type SOCKET TEXT | keys SOCKET KEY... | frame SOCKET [SECS] | "
            "png BEFORE AFTER | resize SOCKET WxH SECS")


main()
