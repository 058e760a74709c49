"""Signatures per second and latency per call through a PKCS#11 module (loadtest/pkcs11-sign.sh).

usage: pkcs11_sign.py MODULE TOKEN_LABEL PIN KEY_LABEL SECONDS PROCESSES...

For each process count: that many processes (fork; each loads and initializes the module
itself, as forked servers do), each signing a SHA-256 digest with CKM_ECDSA in a loop for
SECONDS, one session per process. Prints one JSON line per count: signs/s (all processes),
p50/p99 latency in ms, errors.
"""
import json
import multiprocessing
import sys
import time


def worker(module, token_label, pin, key_label, seconds, out):
    try:
        out.put(measure(module, token_label, pin, key_label, seconds))
    except Exception as e:  # reported, so that the parent does not wait for this process
        out.put(([], 1, repr(e)))


def login(token, pin):
    """A session, waiting while the node delays logins (CKR_PIN_LOCKED: all processes log in
    at once, more than the node hashes passwords at a time)."""
    import pkcs11

    deadline = time.monotonic() + 60
    while True:
        try:
            return token.open(user_pin=pin)
        except pkcs11.exceptions.PinLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def measure(module, token_label, pin, key_label, seconds):
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    lib = pkcs11.lib(module)
    token = lib.get_token(token_label=token_label)
    latencies, errors = [], 0
    with login(token, pin) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        digest = bytes(range(32))
        key.sign(digest, mechanism=Mechanism.ECDSA)  # warm-up: connection, login
        end = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            try:
                key.sign(digest, mechanism=Mechanism.ECDSA)
            except pkcs11.PKCS11Error:
                errors += 1
            latencies.append(time.perf_counter() - t0)
    return latencies, errors, None


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def main():
    module, token_label, pin, key_label, seconds = sys.argv[1:6]
    seconds = float(seconds)
    ctx = multiprocessing.get_context("fork")
    for n in [int(a) for a in sys.argv[6:]]:
        out = ctx.Queue()
        procs = [
            ctx.Process(target=worker, args=(module, token_label, pin, key_label, seconds, out))
            for _ in range(n)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        latencies = sorted(x for r in results for x in r[0])
        errors = sum(r[1] for r in results)
        for r in results:
            if r[2]:
                print(f"a process failed: {r[2]}", file=sys.stderr)
        print(json.dumps({
            "module": module.rsplit("/", 1)[-1],
            "processes": n,
            "signs": len(latencies),
            "signs_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 3),
            "p99_ms": round(percentile(latencies, 99) * 1000, 3),
            "errors": errors,
        }), flush=True)


if __name__ == "__main__":
    main()
