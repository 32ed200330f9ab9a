#!/usr/bin/env python3
# tests/qmp/record-transcripts.py: records the QMP transcripts in
# tests/qmp/data/ from the real QEMU on this machine, so the unit tests replay
# what QEMU 7.2 actually sends (greeting, replies, error replies, events and
# where they interleave) instead of what we believe it sends.
#
# Usage: tests/qmp/record-transcripts.py [OUTDIR]   (default: tests/qmp/data)
#        tests/qmp/record-transcripts.py images [OUTDIR]
#                                          (default: tests/attach/data)
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
#
# The images module's transcripts (`images`, or after the others) need no
# guest: a paused q35 QEMU (-S) with memory-hotplug slots and PCIe root ports
# takes object-add, blockdev-add and device_add all the same. They mimic what
# qmp-plugin/ms-images.c sends for a policy, against a store in a fresh
# temporary directory; its path is written as @STORE@ (the replay puts its
# own store there: ms_fake_qmp_substitute), every other byte is QEMU's.
import contextlib
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


@contextlib.contextmanager
def qemu_running(cmdline, sock):
    """QEMU started with CMDLINE, its QMP socket SOCK there (or 10 s
    passed); stopped and the socket removed at the end."""
    qemu = subprocess.Popen(cmdline)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        yield qemu
    finally:
        qemu.terminate()
        qemu.wait()
        try:
            os.unlink(sock)
        except OSError:
            pass


class Session:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.lines = []
        self.next_id = 1

    @classmethod
    def open(cls, path):
        """A new client: greeting and capabilities negotiation."""
        s = cls(path)
        s.read_line(10)
        s.command("qmp_capabilities")
        return s

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

    def try_command(self, execute, arguments=None):
        """A command whose error reply is part of the exchange: the
        reply's "return" member, or None after an error reply."""
        m = self.command(execute, arguments)
        return m.get("return") if "error" not in m else None

    def save(self, path, comment, subst=None):
        text = "\n".join(self.lines) + "\n"
        for value, placeholder in (subst or {}).items():
            text = text.replace(value, placeholder)
        with open(path, "w") as f:
            f.write("# %s\n" % comment)
            f.write("# recorded by tests/qmp/record-transcripts.py from %s\n" % VERSION)
            f.write(text)
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
    with qemu_running(qemu_cmdline(sock), sock):
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
            s = Session.open(sock)
            for execute, args, settle in cmds:
                s.command(execute, args, settle)
            s.save(os.path.join(out, name), comment)
            print("wrote", os.path.join(out, name))
    os.rmdir(tmp)


MiB = 1024 * 1024


def record_guest(out, name, comment, append, queries, interval):
    """The balloon module's exchange, one period every INTERVAL s: the
    first period asks for 192 MiB of the 256, the following ones only
    query (the module asks once and then watches)."""
    tmp = tempfile.mkdtemp(prefix="ms-qmp-rec-")
    sock = os.path.join(tmp, "qmp.sock")
    serial = os.path.join(tmp, "serial")
    with qemu_running(guest_cmdline(sock, serial, append), sock):
        s = Session.open(sock)
        s.command("query-balloon")
        s.command("balloon", {"value": 192 * MiB}, interval)
        for i in range(queries):
            r = s.command("query-balloon", None, interval)
            if abs(r["return"]["actual"] - 192 * MiB) <= 2 * MiB and i + 1 >= 2:
                break
        s.save(os.path.join(out, name), comment)
        print("wrote", os.path.join(out, name))
    os.unlink(serial)
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


# The images module's store: two 2 MiB blobs (virtio-pmem wants multiples
# of 2 MiB) of one repeated byte each, so that tests/attach/test-images-
# replay.c makes the same files, digests and paths without a builder.
IMAGES = [("usr", b"u"), ("usr2", b"v")]
IMAGE_SIZE = 2 * MiB


def images_store(tmp):
    import hashlib
    store = os.path.join(tmp, "store")
    os.makedirs(os.path.join(store, "blobs"))
    blobs = {}
    for name, byte in IMAGES:
        data = byte * IMAGE_SIZE
        sha = hashlib.sha256(data).hexdigest()
        path = os.path.join(store, "blobs", "sha256-%s.img" % sha)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o444)
        blobs[name] = (path, sha)
    # a file outside blobs/: what an object of another policy maps
    other = os.path.join(store, "other.img")
    with open(other, "wb") as f:
        f.write(b"o" * IMAGE_SIZE)
    return store, blobs, other


def images_cmdline(sock, ports, slots, extra):
    # As tests/lib/qemu.sh starts a hot-plug guest (slots, maxmem, root
    # ports pci.1..N), with the balloon behind pci.1 so that one port is
    # taken; -S: nothing runs, the firmware never numbers the buses.
    # Without slots there is no device memory: QEMU refuses virtio-pmem.
    mem = "256,slots=2,maxmem=1024M" if slots else "256"
    cmd = [QEMU, "-M", "q35", "-accel", "tcg", "-m", mem,
           "-nodefaults", "-no-user-config", "-display", "none", "-S",
           "-object", "memory-backend-ram,id=pc.ram,size=256M",
           "-machine", "memory-backend=pc.ram",
           "-qmp", "unix:%s,server=on,wait=off" % sock]
    for i in range(1, ports + 1):
        cmd += ["-device", "pcie-root-port,id=pci.%d,chassis=%d" % (i, i)]
    return cmd + ["-device", "virtio-balloon-pci,id=balloon0,bus=pci.1"] + extra


def hotplug_buses(pci):
    """ms_images_hotplug_buses: root ports known to be empty, then those
    whose devices QEMU cannot list yet."""
    empty, unknown = [], []
    for bus in pci:
        for dev in bus.get("devices", []):
            br, qid = dev.get("pci_bridge"), dev.get("qdev_id")
            if not isinstance(br, dict) or not qid:
                continue
            if isinstance(br.get("devices"), list):
                if not br["devices"]:
                    empty.append(qid)
            else:
                unknown.append(qid)
    return empty + unknown


def device_add(s, args):
    """ms_images_device_add: query-pci, then each candidate bus until one
    takes the device."""
    for bus in hotplug_buses(s.command("query-pci")["return"]):
        if s.try_command("device_add", dict(args, bus=bus)) is not None:
            return True
    return False


def attach_dax(s, index, blob):
    obj = "ms-img%d" % index
    qom = {"path": "/objects/" + obj, "property": "mem-path"}
    have = s.try_command("qom-get", qom)
    if have == blob:
        return
    if have is not None:
        s.command("qom-get", qom)  # ms_images_adopt_older asks again
        return
    s.command("object-add", {"qom-type": "memory-backend-file", "id": obj, "mem-path": blob,
                             "size": IMAGE_SIZE, "share": True, "readonly": True})
    if not device_add(s, {"driver": "virtio-pmem-pci", "id": "ms-pmem%d" % index, "memdev": obj}):
        s.command("object-del", {"id": obj})


def attach_blk(s, index, blob, sha):
    node = "ms-blk%d" % index
    for n in s.command("query-named-block-nodes")["return"]:
        if n.get("node-name") == node:
            return
    s.command("blockdev-add", {"driver": "raw", "node-name": node, "read-only": True,
                               "file": {"driver": "file", "filename": blob, "read-only": True}})
    if not device_add(s, {"driver": "virtio-blk-pci", "id": "ms-vblk%d" % index, "drive": node,
                          "share-rw": True, "serial": "ms-" + sha[:17]}):
        s.command("blockdev-del", {"node-name": node})


def record_images_qemu(out, ports, slots, extra, sessions, store, more=None):
    tmp = os.path.dirname(store)
    sock = os.path.join(tmp, "qmp-%d.sock" % ports)
    with qemu_running(images_cmdline(sock, ports, slots, extra), sock):
        # MORE: NAME -> (comment, steps), after SESSIONS, named relative to OUT
        for name, comment, steps in sessions + [(n,) + v for n, v in (more or {}).items()]:
            s = Session.open(sock)
            for step in steps:
                step(s)
            s.save(os.path.join(out, name), comment, {store: "@STORE@"})
            print("wrote", os.path.join(out, name))


def main_images(out):
    import shutil
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ms-qmp-rec-")
    try:
        store, blobs, other = images_store(tmp)
        (usr, _), (usr2, sha2) = blobs["usr"], blobs["usr2"]
        # policy: usr dax, usr2 blk; the balloon holds pci.1
        both = [lambda s: attach_dax(s, 0, usr), lambda s: attach_blk(s, 1, usr2, sha2)]
        # QEMU 7.2 takes a device_add on a root port that holds a device
        # already (at slot 1, where a PCIe guest does not look); recorded
        # as QEMU answers the module's commands
        record_images_qemu(out, 3, True, [], [
            ("images-attach.txt",
             "policy usr (dax) + usr2 (blk), 3 root ports, the balloon on pci.1: QEMU 7.2 takes "
             "both device_add on pci.1 (slot 1, next to the balloon)", both),
            ("images-reattach.txt",
             "the same policy, an agent restarted: both found by id, nothing attached twice", both),
        ], store, {
            # the tracking module's exchange (ms_tracking_create) with the
            # images attached: the pmem backend must not be taken for RAM
            "../tracking/data/tracking-create.txt": (
                "ms_tracking_create: pc.ram (256 MiB) and ms-img0, the backend of virtio-pmem "
                "ms-pmem0, which query-memory-devices shows device-backed",
                [lambda s: s.command("query-memdev"), lambda s: s.command("query-memory-devices")]),
        })
        # policy: usr dax, usr2 dax; ms-img0 already maps a file outside the
        # store, and the domain has no memory-hotplug slots
        record_images_qemu(out, 2, False, [
            "-object", "memory-backend-file,id=ms-img0,mem-path=%s,size=%d,share=on,readonly=on"
            % (other, IMAGE_SIZE)], [
            ("images-refused.txt",
             "policy usr (dax) + usr2 (dax): ms-img0 exists mapping another file; a domain "
             "without memory-hotplug slots: QEMU refuses virtio-pmem on both root ports, the "
             "backend of usr2 is deleted again",
             [lambda s: attach_dax(s, 0, usr), lambda s: attach_dax(s, 1, blobs["usr2"][0])]),
        ], store)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "images":
        VERSION = subprocess.run([QEMU, "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[0]
        main_images(sys.argv[2] if len(sys.argv) > 2 else os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "attach", "data"))
        sys.exit(0)
    main()
    main_images(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "attach", "data"))
    if os.environ.get("MS_GUEST_KERNEL") and os.environ.get("MS_GUEST_INITRD"):
        main_guest()
