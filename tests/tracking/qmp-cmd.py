#!/usr/bin/env python3
# tests/tracking/qmp-cmd.py: runs QMP commands on a QEMU monitor socket and
# prints each reply's "return" as JSON (exits 1 on an error reply).
#   usage: qmp-cmd.py SOCKET COMMAND[:JSON-ARGS]...
import json, socket, sys

def main():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sys.argv[1])
    f = s.makefile("rw")
    def reply():
        while True:
            line = f.readline()
            if not line:
                sys.exit("QMP: connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg
    reply()  # greeting
    for cmd in ["qmp_capabilities"] + sys.argv[2:]:
        name, _, args = cmd.partition(":")
        req = {"execute": name}
        if args:
            req["arguments"] = json.loads(args)
        f.write(json.dumps(req) + "\n")
        f.flush()
        r = reply()
        if "error" in r:
            sys.exit("QMP %s: %s" % (name, r["error"]))
        if name != "qmp_capabilities":
            print(json.dumps(r["return"]))

main()
