# Control-protocol driver run inside the rig's L1 next to vireo-vmm (python3 from the host's
# /usr). argv: WORKDIR. Reads WORKDIR/steps.json, prints one "DRIVER {json}" line per step.
import json, os, socket, sys, time

W = sys.argv[1]
steps = json.load(open(os.path.join(W, "steps.json")))


def log(d):
    print("DRIVER " + json.dumps(d), flush=True)


def serial():
    try:
        with open(os.path.join(W, "serial.log"), "rb") as f:
            return f.read().decode("latin1")
    except OSError:
        return ""


s = None
for _ in range(1000):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(W, "ctl.sock"))
        break
    except OSError:
        s = None
        time.sleep(0.02)
if s is None:
    log({"op": "connect", "ok": False})
    sys.exit(1)
f = s.makefile("rw")
log({"op": "greeting", "msg": json.loads(f.readline()), "t": time.time()})
for st in steps:
    op = st["op"]
    if op == "wait_serial":
        end = time.time() + st.get("timeout", 150)
        ok = False
        while time.time() < end:
            if st["text"] in serial():
                ok = True
                break
            time.sleep(0.05)
        log({"op": op, "text": st["text"], "ok": ok, "t": time.time()})
        if not ok:
            break
    elif op == "cmd":
        f.write(json.dumps({"execute": st["execute"], "arguments": st.get("arguments", {})}) + "\n")
        f.flush()
        while True:
            m = json.loads(f.readline())
            if "event" in m:
                log({"op": "event", "msg": m, "t": time.time()})
                continue
            log({"op": op, "execute": st["execute"], "reply": m, "t": time.time()})
            break
    elif op == "sleep":
        time.sleep(st["s"])
        log({"op": op, "t": time.time()})
try:
    for line in f:
        log({"op": "event", "msg": json.loads(line), "t": time.time()})
except Exception as e:  # the VMM went away mid-line
    log({"op": "drain", "err": str(e)})
