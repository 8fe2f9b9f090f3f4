# Helper run inside the rig's L1 next to vireo-vmm by tests/vnc_rig.rs (python3 from the
# host's /usr; standard library only). Subcommands:
#   wait-serial LOG TEXT SECONDS line|text
#                                  exit 0 once a line of LOG (CR stripped) equals TEXT (line)
#                                  or LOG contains TEXT (text)
#   ctl SOCKET COMMAND [JSON]      one control-socket command; prints the reply, exit 1 on error
#   relay PORT SOCKET              forwards 127.0.0.1:PORT to the unix SOCKET (gvnccapture
#                                  only speaks TCP), until killed
#   idle SOCKET SETTLE SECONDS     RFB 3.8 client (Raw only) that keeps asking for incremental
#                                  updates; after SETTLE s, counts what arrives for SECONDS s
import json, select, socket, struct, sys, threading, time


def wait_serial(log, text, secs, mode):
    end = time.time() + float(secs)
    while time.time() < end:
        try:
            with open(log, "rb") as f:
                data = f.read().decode("latin1").replace("\r", "")
            if (mode == "line" and text in data.split("\n")) or (mode == "text" and text in data):
                return 0
        except OSError:
            pass
        time.sleep(0.2)
    return 1


def ctl(path, command, args="{}"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rw")
    f.readline()  # greeting
    f.write(json.dumps({"execute": command, "arguments": json.loads(args)}) + "\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            print("CTL no reply to " + command)
            return 1
        m = json.loads(line)
        if "event" in m:
            continue
        print("CTL " + json.dumps(m))
        return 0 if "return" in m else 1


class Rfb:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b""
        self.count = 0

    def fill(self, deadline):
        t = deadline - time.time()
        if t <= 0:
            return False
        r, _, _ = select.select([self.s], [], [], t)
        if not r:
            return False
        c = self.s.recv(65536)
        if not c:
            raise EOFError("server closed the connection")
        self.buf += c
        self.count += len(c)
        return True

    def take(self, n, deadline):
        while len(self.buf) < n:
            if not self.fill(deadline):
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, b):
        self.s.sendall(b)


def idle(path, settle, secs):
    far = time.time() + 60
    c = Rfb(path)
    c.take(12, far)
    c.send(b"RFB 003.008\n")
    n = c.take(1, far)[0]
    types = c.take(n, far)
    if 1 not in types:
        print("IDLE no 'None' security type offered: %r" % types)
        return 1
    c.send(b"\x01")
    if struct.unpack(">I", c.take(4, far))[0] != 0:
        print("IDLE security failed")
        return 1
    c.send(b"\x01")
    w, h = struct.unpack(">HH", c.take(4, far))
    bpp = c.take(16, far)[0] // 8
    c.take(struct.unpack(">I", c.take(4, far))[0], far)
    c.send(struct.pack(">BxHi", 2, 1, 0))
    c.send(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    start = time.time()
    t_measure = start + float(settle)
    t_end = t_measure + float(secs)
    base = None
    updates = rects = 0
    sizes = []
    while True:
        if base is None and time.time() >= t_measure:
            base = c.count - len(c.buf)
        hdr = c.take(1, t_measure if base is None else t_end)
        if hdr is None:
            if base is None:
                continue
            break
        kind = hdr[0]
        if kind == 0:
            nr = struct.unpack(">xH", c.take(3, far))[0]
            got = 0
            for _ in range(nr):
                x, y, rw, rh, enc = struct.unpack(">HHHHi", c.take(12, far))
                if enc != 0:
                    print("IDLE unexpected encoding %d" % enc)
                    return 1
                c.take(rw * rh * bpp, far)
                got += 1
                if base is not None:
                    sizes.append("%dx%d@%d,%d" % (rw, rh, x, y))
            if base is not None:
                updates += 1
                rects += got
            c.send(struct.pack(">BBHHHH", 3, 1, 0, 0, w, h))
        elif kind == 2:
            pass
        elif kind == 3:
            c.take(3, far)
            c.take(struct.unpack(">I", c.take(4, far))[0], far)
        else:
            print("IDLE unexpected message type %d" % kind)
            return 1
    if base is None:
        base = c.count - len(c.buf)
    total = c.count - len(c.buf) - base
    print(
        "IDLE bytes=%d seconds=%s updates=%d rects=%d sample=%s"
        % (total, secs, updates, rects, ",".join(sizes[:6]))
    )
    return 0


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(port, path):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(port)))
    ls.listen(4)
    print("RELAY listening on %s" % port, flush=True)
    while True:
        c, _ = ls.accept()
        u = socket.socket(socket.AF_UNIX)
        u.connect(path)
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()


def main(argv):
    cmd = argv[1]
    if cmd == "wait-serial":
        return wait_serial(argv[2], argv[3], argv[4], argv[5])
    if cmd == "ctl":
        return ctl(*argv[2:5])
    if cmd == "relay":
        return relay(argv[2], argv[3])
    if cmd == "idle":
        return idle(argv[2], argv[3], argv[4])
    print("unknown subcommand " + cmd)
    return 2


sys.exit(main(sys.argv))
