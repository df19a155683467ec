"""TEST ONLY — a fake fast `bonefe run` for the service's load test: no physics at all.

Called as `python fake_runner.py CASE --output DIR`; prints stage lines like `bonefe run`, sleeps
FAKE_RUN_S seconds, writes a placeholder report.json/.html/.pdf (with the Slurm job id when run by Slurm) and appends `start`/`end` lines for
the request to FAKE_RUN_LEDGER, so the test can count how often each request really ran.
"""

import json
import os
import sys
import time
from pathlib import Path

case, output = Path(sys.argv[1]), Path(sys.argv[3])
ledger = Path(os.environ["FAKE_RUN_LEDGER"])
request = case.parent.name


def note(event: str) -> None:
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(f"{request} {event}\n")


note("start")
stages = ["read images", "anatomy", "mesh", "material", "solve and assess", "report"]
for number, stage in enumerate(stages, 1):
    print(f"[{number}/{len(stages)}] {stage} ...", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("FAKE_RUN_S", "0.6")) / len(stages))
partial = output.with_name(output.name + ".partial")  # published in one rename, as `bonefe run` does
partial.mkdir(parents=True)
(partial / "report.json").write_text(json.dumps({"failure_load_bw": 9.5, "risk_category": "moderate",
                                                 "slurm_job": os.environ.get("SLURM_JOB_ID")}), encoding="utf-8")
(partial / "report.html").write_text("<html><body><h1>fake report</h1></body></html>", encoding="utf-8")
(partial / "report.pdf").write_bytes(b"%PDF-1.4\n% fake\n")
partial.rename(output)
note("end")
