#!/usr/bin/env python3
# tests/qmp/record-transcripts.py: records the QMP transcripts in
# tests/qmp/data/ from the real QEMU on this machine, so the unit tests replay
# what QEMU 7.2 actually sends (greeting, replies, error replies, events and
# where they interleave) instead of what we believe it sends.
#
# Usage: tests/qmp/record-transcripts.py [OUTDIR]   (default: tests/qmp/data)
#
# With MS_GUEST_KERNEL and MS_GUEST_INITRD (the test guest, tests/guest/;
# `meson devenv` or the paths in BUILD/tests/guest) it also records the
# balloon module's transcripts into tests/balloon/data/ (or GUEST_OUTDIR):
# a guest whose balloon moves late (the driver loads while the guest
# boots) and one whose balloon never moves (ms.noballoon=1).
#
# Transcript format, one message per line:
#   # comment
#   S: {...}     a message QEMU sent (the bytes of one line, without CRLF)
#   C: {...}     a command the client sent; replies that carry its "id" are
#                rewritten by the replay peer to the id the client under test
#                chose, so the client's id scheme is not baked into the data.
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")


def qemu_cmdline(sock):
    return [QEMU, "-M", "q35", "-accel", "tcg", "-m", "256", "-nodefaults",
            "-display", "none", "-S",
            "-qmp", "unix:%s,server=on,wait=off" % sock,
            "-device", "virtio-balloon-pci,id=balloon0",
            "-object", "memory-backend-ram,id=pc.ram,size=256M",
            "-machine", "memory-backend=pc.ram"]


def guest_cmdline(sock, serial, append):
    return [QEMU, "-M", "q35", "-accel", "tcg", "-m", "256", "-smp", "1",
            "-nodefaults", "-display", "none", "-no-user-config",
            "-object", "memory-backend-ram,id=pc.ram,size=256M",
            "-machine", "memory-backend=pc.ram",
            "-device", "virtio-balloon-pci,id=balloon0",
            "-qmp", "unix:%s,server=on,wait=off" % sock,
            "-serial", "file:%s" % serial,
            "-kernel", os.environ["MS_GUEST_KERNEL"],
            "-initrd", os.environ["MS_GUEST_INITRD"],
            "-append", "console=ttyS0 quiet ms.scenario=idle " + append]


class Session:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.lines = []
        self.next_id = 1

    def read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QEMU closed the monitor")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.rstrip(b"\r").decode()
        self.lines.append("S: " + line)
        return json.loads(line)

    def command(self, execute, arguments=None, settle=0.0):
        msg = {"execute": execute}
        if arguments is not None:
            msg["arguments"] = arguments
        msg["id"] = "rec-%d" % self.next_id
        self.next_id += 1
        text = json.dumps(msg)
        self.lines.append("C: " + text)
        self.sock.sendall(text.encode() + b"\n")
        while True:
            m = self.read_line(10)
            if m is None:
                raise TimeoutError("no reply to " + execute)
            if m.get("id") == msg["id"]:
                break
        # Collect what QEMU sends shortly after (events caused by the command).
        while settle > 0 and self.read_line(settle) is not None:
            pass
        return m

    def save(self, path, comment):
        with open(path, "w") as f:
            f.write("# %s\n" % comment)
            f.write("# recorded by tests/qmp/record-transcripts.py from %s\n" % VERSION)
            f.write("\n".join(self.lines) + "\n")
        self.sock.close()


def main():
    global VERSION
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "data")
    os.makedirs(out, exist_ok=True)
    VERSION = subprocess.run([QEMU, "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    tmp = tempfile.mkdtemp(prefix="ms-qmp-rec-")
    sock = os.path.join(tmp, "qmp.sock")
    qemu = subprocess.Popen(qemu_cmdline(sock))
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)

        def session():
            s = Session(sock)
            s.read_line(10)
            s.command("qmp_capabilities")
            return s

        # Each scenario is its own connection: QEMU greets every new client.
        cases = [
            ("greeting.txt", "greeting and capabilities negotiation", []),
            ("query-version.txt", "query-version", [("query-version", None, 0)]),
            ("query-balloon.txt", "query-balloon", [("query-balloon", None, 0)]),
            ("query-memdev.txt", "query-memdev", [("query-memdev", None, 0)]),
            ("balloon.txt",
             "balloon to 128 MiB; BALLOON_CHANGE needs a guest driver, none runs under -S",
             [("balloon", {"value": 128 * 1024 * 1024}, 1.0),
              ("query-balloon", None, 0)]),
            ("error-command-not-found.txt", "an unknown command",
             [("no-such-command", None, 0)]),
            ("error-bad-argument.txt", "balloon with a string value",
             [("balloon", {"value": "lots"}, 0)]),
            ("events-cont-stop.txt",
             "cont and stop: QEMU sends RESUME/STOP before the command's reply",
             [("cont", None, 0.2), ("stop", None, 0.2)]),
        ]
        for name, comment, cmds in cases:
            s = session()
            for execute, args, settle in cmds:
                s.command(execute, args, settle)
            s.save(os.path.join(out, name), comment)
            print("wrote", os.path.join(out, name))
    finally:
        qemu.terminate()
        qemu.wait()
        try:
            os.unlink(sock)
        except OSError:
            pass
        os.rmdir(tmp)


MiB = 1024 * 1024


def record_guest(out, name, comment, append, queries, interval):
    """The balloon module's exchange, one period every INTERVAL s: the
    first period asks for 192 MiB of the 256, the following ones only
    query (the module asks once and then watches)."""
    tmp = tempfile.mkdtemp(prefix="ms-qmp-rec-")
    sock = os.path.join(tmp, "qmp.sock")
    serial = os.path.join(tmp, "serial")
    qemu = subprocess.Popen(guest_cmdline(sock, serial, append))
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        s = Session(sock)
        s.read_line(10)
        s.command("qmp_capabilities")
        s.command("query-balloon")
        s.command("balloon", {"value": 192 * MiB}, interval)
        for i in range(queries):
            r = s.command("query-balloon", None, interval)
            if abs(r["return"]["actual"] - 192 * MiB) <= 2 * MiB and i + 1 >= 2:
                break
        s.save(os.path.join(out, name), comment)
        print("wrote", os.path.join(out, name))
    finally:
        qemu.terminate()
        qemu.wait()
        for f in (sock, serial):
            try:
                os.unlink(f)
            except OSError:
                pass
        os.rmdir(tmp)


def main_guest():
    out = os.environ.get("GUEST_OUTDIR", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "balloon", "data"))
    record_guest(out, "balloon-late.txt",
                 "a booting guest: its balloon driver loads late, then the balloon moves to 192 MiB",
                 "", 30, 1.0)
    record_guest(out, "balloon-stuck.txt",
                 "a guest without balloon driver (ms.noballoon=1): the balloon never moves",
                 "ms.noballoon=1", 6, 1.0)


if __name__ == "__main__":
    main()
    if os.environ.get("MS_GUEST_KERNEL") and os.environ.get("MS_GUEST_INITRD"):
        main_guest()
