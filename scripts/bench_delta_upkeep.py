"""The work of scripts/bench-delta-upkeep (see there): run with the test tools' Python, which has
deltalake and polars."""

import importlib.machinery
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

import deltalake
import polars

HERE = os.path.dirname(os.path.abspath(__file__))
gen = importlib.machinery.SourceFileLoader("gen_export", os.path.join(HERE, "gen-export")).load_module()
DDBSNAP = os.path.join(HERE, "..", "target", "release", "ddbsnap")
T0 = 1_763_596_800  # 2025-11-20T00:00:00Z, the full export's time
WINDOW = 15 * 60


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def ddbsnap(*args):
    started = time.monotonic()
    out = subprocess.run([DDBSNAP, *args, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ddbsnap {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout), time.monotonic() - started


def fingerprint(it):
    """What a row must hold: its key, amount and version marker."""
    return (it["pk"]["S"], int(it["sk"]["N"]), it["amount"]["N"], it["meta"]["M"].get("v", {"N": "0"})["N"])


def incremental(bucket, run, state, changes, rng, next_key):
    """Write the run-th incremental export: CHANGES changes to `state`, which it updates."""
    lines, micros = [], (T0 + run * WINDOW) * 1_000_000
    for n in range(changes):
        micros += 1
        kind = n % 3
        if kind == 0 or not state:  # insert
            new = gen.item(next_key[0], rng, run + 1)
            next_key[0] += 1
            record = {"Keys": {"pk": new["pk"], "sk": new["sk"]}, "NewImage": new}
            state[(new["pk"]["S"], int(new["sk"]["N"]))] = new
        else:
            key = rng.choice(list(state))
            old = state[key]
            if kind == 1:  # update
                new = gen.item(key[1], rng, run + 1)
                new["pk"] = old["pk"]
                record = {"Keys": {"pk": old["pk"], "sk": old["sk"]}, "NewImage": new, "OldImage": old}
                state[key] = new
            else:  # delete
                record = {"Keys": {"pk": old["pk"], "sk": old["sk"]}, "OldImage": old}
                del state[key]
        record["Metadata"] = {"WriteTimestampMicros": {"N": str(micros)}}
        lines.append(json.dumps(record, separators=(",", ":")))
    summary = {
        "version": "2023-08-01",
        "exportType": "INCREMENTAL_EXPORT",
        "exportFromTime": iso(T0 + (run - 1) * WINDOW),
        "exportToTime": iso(T0 + run * WINDOW),
        "outputView": "NEW_AND_OLD_IMAGES",
    }
    export_id = f"{1_700_000_000_000 + run * 1000:014d}-run{run:05d}"
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            gen.write(bucket, export_id, lines, 1, summary, shared_data=True)
        finally:
            sys.stdout = stdout
    return f"{bucket}/{gen.PREFIX}/AWSDynamoDB/{export_id}"


def open_times(path, version, repeat=5):
    """Median seconds for deltalake to open `version` and for polars to read its keys."""
    def timed(f):
        runs = []
        for _ in range(repeat):
            started = time.monotonic()
            f()
            runs.append(time.monotonic() - started)
        return statistics.median(runs)

    return (
        timed(lambda: deltalake.DeltaTable(path, version=version)),
        timed(lambda: polars.read_delta(path, version=version, columns=["pk"])),
    )


def main():
    work, items, runs, changes, file_mib = sys.argv[1], *map(int, sys.argv[2:6])
    bucket, table = f"{work}/bucket", f"{work}/table"
    rng = random.Random(5)
    full_rng = random.Random(7)
    lines = [json.dumps({"Item": gen.item(i, full_rng)}, separators=(",", ":")) for i in range(items)]
    state = {}
    replay = random.Random(7)
    for i in range(items):
        it = gen.item(i, replay)
        state[(it["pk"]["S"], i)] = it
    full = {"version": "2020-06-30", "exportType": "FULL_EXPORT", "exportTime": iso(T0)}
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        gen.write(bucket, "01700000000000-bench000", lines, 4, full, shared_data=False)
        sys.stdout = stdout
    summary, seconds = ddbsnap("convert-export", f"{bucket}/{gen.PREFIX}/AWSDynamoDB/01700000000000-bench000",
                               "--to", table, "--format", "delta", "--key", "pk,sk", "--file-size", str(file_mib))
    print(f"version 0: {items} items in {summary['files']} files ({seconds:.2f} s)")
    expected = {0: sorted(map(fingerprint, state.values()))}
    live, most, walls, compacted = summary["files"], summary["files"], [], 0
    next_key = [items]
    print(f"{'version':>7} {'files':>6} {'merge_s':>8} {'checkpoint':>10}")
    for run in range(1, runs + 1):
        export = incremental(bucket, run, state, changes, rng, next_key)
        summary, seconds = ddbsnap("convert-export", export, "--to", table, "--format", "delta", "--file-size", str(file_mib))
        d = summary["delta"]
        assert d["version"] == run, summary
        live += d["files_added"] - d["files_removed"]
        most = max(most, live)
        compacted += d["merge"]["files_compacted"]
        walls.append((seconds, d["log_checkpoint"]))
        expected[run] = sorted(map(fingerprint, state.values()))
        if run % max(1, runs // 10) == 0:
            print(f"{run:>7} {live:>6} {seconds:>8.2f} {str(d['log_checkpoint']):>10}")
    log = f"{table}/_delta_log"
    checkpoints = sorted(f for f in os.listdir(log) if ".checkpoint." in f)
    sizes = [os.path.getsize(f"{log}/{f}") for f in checkpoints]
    with_cp = statistics.median(w for w, c in walls if c)
    without_cp = statistics.median(w for w, c in walls if not c)
    print(f"files: at most {most} live (now {live}); {compacted} small files folded in by MERGEs")
    print(f"log: {len(os.listdir(log))} files, {len(checkpoints)} checkpoints of "
          f"{min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KiB; a run that writes one takes "
          f"{with_cp:.2f} s (median) against {without_cp:.2f} s for one that does not")
    bare = f"{work}/no-checkpoints"
    shutil.copytree(table, bare)
    for f in os.listdir(f"{bare}/_delta_log"):
        if ".checkpoint." in f or f == "_last_checkpoint":
            os.remove(f"{bare}/_delta_log/{f}")
    print(f"{'open':>7} {'deltalake_s':>12} {'polars_s':>9} {'deltalake_no_cp_s':>18} {'polars_no_cp_s':>15}")
    for version in sorted({10, 100, runs} & set(range(runs + 1))):
        a, b = open_times(table, version)
        c, e = open_times(bare, version)
        print(f"{version:>7} {a:>12.4f} {b:>9.4f} {c:>18.4f} {e:>15.4f}")
    started = time.monotonic()
    for version in range(runs + 1):
        dt = deltalake.DeltaTable(table, version=version)
        rows = dt.to_pyarrow_table(columns=["pk", "sk", "amount", "meta"]).to_pylist()
        got = sorted((r["pk"], r["sk"], format(r["amount"].normalize(), "f") if r["amount"] is not None else None,
                      str((r["meta"] or {}).get("v") or 0)) for r in rows)
        want = [(pk, sk, format(__import__("decimal").Decimal(a).normalize(), "f"), v) for pk, sk, a, v in expected[version]]
        assert got == want, f"version {version} differs from the expected state"
    print(f"every version 0..{runs} holds the expected rows (checked in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # deltalake's runtime can abort while the interpreter shuts down; the answer is out.
    os._exit(0)
