#!/usr/bin/python3
# bench/density-host/loadgen.py: the density benchmark's load generator
# (python3 stdlib only). Open loop: every target gets requests at a fixed
# rate whatever the answers do (request k is sent at t0 + k/RATE, latency
# is measured from that scheduled time, so a slow guest cannot slow its
# own load down and hide its queueing). Each request is a new HTTP/1.0
# connection asking for one random file of the guest's working set
# (/ws/fN.bin, 16 KiB, tests/guest/debian/density.sh); a reply counts as ok
# only with status 200 and the whole 16 KiB body, within --timeout.
# Before and after, it reads the guest's /ms/stat and /ms/vmstat (copied
# there by the guest every 2 s): the guest's CPU steal and OOM kills over
# the step; and the host's /proc/stat: host CPU idle over the step.
#   usage: loadgen.py --rate R --seconds S --timeout MS --files N
#                     [--path-prefix /ws/f] NAME=HOST:PORT...
# Output (stdout): one JSON object {"host_idle_pct": X, "targets": {NAME:
# {"sent", "ok", "errors", "error_kinds", "p50_ms", "p99_ms", "max_ms",
# "achieved_rate", "steal_pct", "guest_oom_kills"}}, "loadgen_cpu_pct": X,
# "send_lag_ms_max": X}; p50/p99 over the ok replies (null when none).
import argparse, asyncio, json, os, random, sys, time

BODY = 16384


def host_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v[:8])   # idle + iowait, total (no guest columns)


async def http_get(host, port, path, timeout):
    async def go():
        r, w = await asyncio.open_connection(host, port)
        try:
            w.write(f"GET {path} HTTP/1.0\r\nHost: guest\r\n\r\n".encode())
            await w.drain()
            data = await r.read()
        finally:
            w.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else b"?"
        return status.decode(errors="replace"), body
    return await asyncio.wait_for(go(), timeout)


async def guest_counters(host, port, timeout):
    """(steal ticks, total ticks, oom_kill) from the guest, or None."""
    try:
        st, body = await http_get(host, port, "/ms/stat", timeout)
        st2, body2 = await http_get(host, port, "/ms/vmstat", timeout)
        if st != "200" or st2 != "200":
            return None
        cpu = [int(x) for x in body.decode().splitlines()[0].split()[1:]]
        oom = 0
        for line in body2.decode().splitlines():
            k, _, val = line.partition(" ")
            if k == "oom_kill":
                oom = int(val)
        return cpu[7], sum(cpu[:8]), oom
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return None


async def drive(name, host, port, a, res, lags):
    lat, kinds, sent = [], {}, 0
    sends = []
    tasks = []
    t0 = time.monotonic() + 0.2
    n = int(a.rate * a.seconds)
    # each target starts at its own phase so that the guests' requests
    # do not all arrive at the same instant
    t0 += random.random() / a.rate

    async def one(k):
        due = t0 + k / a.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = time.monotonic()
        sends.append(now)
        lags.append((now - due) * 1000)
        path = f"{a.path_prefix}{random.randrange(a.files)}.bin"
        try:
            st, body = await http_get(host, port, path, a.timeout / 1000)
            if st != "200":
                kinds[f"status {st}"] = kinds.get(f"status {st}", 0) + 1
            elif len(body) != BODY:
                kinds["short body"] = kinds.get("short body", 0) + 1
            else:
                lat.append((time.monotonic() - due) * 1000)
        except asyncio.TimeoutError:
            kinds["timeout"] = kinds.get("timeout", 0) + 1
        except OSError as e:
            k2 = type(e).__name__
            kinds[k2] = kinds.get(k2, 0) + 1

    for k in range(n):
        tasks.append(asyncio.ensure_future(one(k)))
        sent += 1
    await asyncio.gather(*tasks)
    lat.sort()

    def pct(p):
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, max(0, int(len(lat) * p + 0.5) - 1))], 2)
    # requests started per second, from the first one due to the last one
    # started: below --rate when this process could not keep up
    span = max(sends) - t0 if sends else 0
    achieved = round((len(sends) - 1) / span, 2) if span > 0 else None
    res[name] = {"sent": sent, "ok": len(lat), "errors": sent - len(lat), "error_kinds": kinds,
                 "achieved_rate": achieved,
                 "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                 "max_ms": round(lat[-1], 2) if lat else None}


async def main(a):
    targets = []
    for t in a.targets:
        name, _, hp = t.partition("=")
        host, _, port = hp.rpartition(":")
        if not name or not host or not port.isdigit():
            sys.exit(f"loadgen: target '{t}': expected NAME=HOST:PORT")
        targets.append((name, host, int(port)))
    before = await asyncio.gather(*[guest_counters(h, p, 2) for _, h, p in targets])
    i0, t0 = host_cpu()
    c0, w0 = os.times(), time.monotonic()
    res, lags = {}, []
    await asyncio.gather(*[drive(n, h, p, a, res, lags) for n, h, p in targets])
    i1, t1 = host_cpu()
    c1, w1 = os.times(), time.monotonic()
    after = await asyncio.gather(*[guest_counters(h, p, 2) for _, h, p in targets])
    for (name, _, _), b, e in zip(targets, before, after):
        if b and e and e[1] > b[1]:
            res[name]["steal_pct"] = round(100 * (e[0] - b[0]) / (e[1] - b[1]), 1)
            res[name]["guest_oom_kills"] = e[2] - b[2]
        else:
            res[name]["steal_pct"] = None
            res[name]["guest_oom_kills"] = None
    out = {"rate": a.rate, "seconds": a.seconds,
           "host_idle_pct": round(100 * (i1 - i0) / max(1, t1 - t0), 1),
           "loadgen_cpu_pct": round(100 * (c1.user + c1.system - c0.user - c0.system) / max(1e-3, w1 - w0), 1),
           "send_lag_ms_max": round(max(lags), 1) if lags else None, "targets": res}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, required=True, help="requests per second per target")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=2000, help="ms")
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--path-prefix", default="/ws/f")
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    if a.rate <= 0 or a.seconds <= 0 or a.files <= 0 or a.rate * a.seconds > 1e6:
        sys.exit("loadgen: --rate, --seconds, --files must be > 0 (and rate*seconds <= 1e6)")
    asyncio.run(main(a))
