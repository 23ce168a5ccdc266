"""Wall time of ``refusal-tl reproduce``: each stage of a run computed from an empty run directory,
and a cached rerun of the same command.

Run it right after ``make demo`` (or ``refusal-tl reproduce --out RUN``) from an empty ``RUN``: the
stages are read from ``RUN/timings.json``, which that run wrote (kept as ``RUN/timings-first.json``,
since every rerun rewrites ``timings.json``). The benchmark then runs the same command again and
times it end to end (process start, model load, every stage found finished, every evaluation read
from ``RUN/eval``, the report rewritten). Writes ``benchmarks/results/reproduce-PROFILE.json``.

Usage:  python benchmarks/bench_reproduce.py [--run runs/demo]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from timing import Results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    args = p.parse_args()
    first = args.run / "timings-first.json"
    if not first.is_file():
        if not (args.run / "timings.json").is_file():
            sys.exit(f"no {args.run}/timings.json: run `refusal-tl reproduce --out {args.run}` (or `make demo`) first.")
        shutil.copy(args.run / "timings.json", first)
    rec = json.loads(first.read_text())
    cfg = rec["config"]
    cmd = [str(Path(sys.executable).parent / "refusal-tl"), "reproduce", "--model", cfg["model"], "--profile",
           cfg["profile"], "--out", str(args.run), "--dtype", cfg.get("dtype", "auto")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    rerun = time.perf_counter() - t0
    res = Results(f"reproduce-{cfg['profile']}", f"`refusal-tl reproduce`, {cfg['profile']} profile "
                  f"({rec['dtype']}, {rec['model']})",
                  f"stages of the run that computed `{args.run}` from an empty run directory (its timings.json); "
                  f"then the same command again, timed end to end: `{' '.join(cmd[1:])}`")
    res.rows = [{"what": stage, "seconds": v["seconds"], "peak_rss_gb": v.get("peak_rss_gb")}
                for stage, v in rec["stages"].items()]
    res.rows.append({"what": "total", "seconds": round(sum(v["seconds"] for v in rec["stages"].values()), 1)})
    res.rows.append({"what": "cached rerun (whole command)", "seconds": round(rerun, 1)})
    for r in res.rows:
        print(f"RESULT {r['what']}: {r['seconds']:.1f} s")
    res.write()


if __name__ == "__main__":
    main()
