"""`bonefe batch`: run a cohort of cases, each in its own process, locally or as a Slurm job array.

Every case runs as `[mpirun -n R] python -m bonefe.cli run CASE --output DIR/cases/<name>`, so a
crash of one case cannot touch the others, and `bonefe run` replaces its case folder in one
rename. Cases may be patient bones or specimens in a test machine (`site: specimen`, whose report
is specimen-report.json). Rerunning skips cases whose folder holds its report and retries the
rest. The batch folder DIR holds:

  batch.json                the cohort: case names and files, ranks, mesh size, MPI launcher, Slurm jobs
  cases/<name>/             each case's output folder (written by `bonefe run`)
  status/<name>.json        each case's last attempt: status, runtime, exit code, one-line error,
                            and the summary's numbers from its report
  logs/<name>.out, .err     each case's standard output and error
  cohort-summary.csv/.json  one row per case (SUMMARY_COLUMNS), rewritten after every case

A case's summary status is "done" when its folder holds its report, else what its status file
says ("failed", "running", "pending"); a "running" record whose process or Slurm task has
vanished becomes "failed" (interrupted), so a rerun retries it.
"""

import csv
import fcntl
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_json, atomic_write_text
from bonefe.cohort.slurm_queue import ended_state, queued_tasks, refuse_if_queued
from bonefe.sites import case_name as named

MANIFEST = "batch.json"
SUMMARY_COLUMNS = (
    "case", "status", "runtime_s", "failure_load_n", "failure_load_bw", "risk_category",
    "strain_fold_ratio", "mirels_min", "mirels_max", "axial_involvement_mm", "stiffness_n_per_mm", "error", "output",
)
REPORTS = ("report.json", "specimen-report.json")
"""A finished case's report: a patient bone's, or a specimen's (`bonefe.sites.specimen.run`)."""
ERROR_CHARS = 300  # longest error text kept per case
ERROR_PREFIX = "bonefe: error: "  # how the CLI prints a user error (bonefe.cli.main)


@dataclass(frozen=True)
class Cohort:
    """A batch folder and its cases (name -> absolute case file, in the order given).

    ranks: MPI ranks per case; mesh_size: mesh.size_mm override (mm) or None;
    launcher: the command that starts MPI ranks (`-n R` is appended), unused when ranks == 1;
    slurm_jobs: ids of the Slurm job arrays submitted for this folder, oldest first.
    """

    folder: Path
    cases: dict[str, Path]
    ranks: int = 1
    mesh_size: float | None = None
    launcher: list[str] = field(default_factory=list)
    slurm_jobs: list[str] = field(default_factory=list)

    def output(self, name: str) -> Path:
        return self.folder / "cases" / name

    def status_path(self, name: str) -> Path:
        return self.folder / "status" / f"{name}.json"

    def log_path(self, name: str, stream: str) -> Path:
        return self.folder / "logs" / f"{name}.{stream}"

    def report(self, name: str) -> Path | None:
        """The case's report (`REPORTS`), or None while it has none."""
        return next((path for path in (self.output(name) / r for r in REPORTS) if path.is_file()), None)

    def is_done(self, name: str) -> bool:
        return self.report(name) is not None

    def command(self, name: str) -> list[str]:
        """The command that runs one case (through the MPI launcher when ranks > 1)."""
        run = [sys.executable, "-m", "bonefe.cli", "run", str(self.cases[name]),
               "--output", str(self.output(name)), "--quiet"]
        if self.mesh_size is not None:
            run += ["--mesh-size", repr(self.mesh_size)]
        return run if self.ranks == 1 else [*self.launcher, "-n", str(self.ranks), *run]

    def save(self) -> None:
        atomic_write_json(self.folder / MANIFEST, {
            "cases": [{"case": name, "file": str(path)} for name, path in self.cases.items()],
            "ranks": self.ranks, "mesh_size_mm": self.mesh_size, "launcher": self.launcher,
            "slurm_jobs": self.slurm_jobs,
        })


def case_name(path: Path) -> str:
    """The case's `name` (a patient bone's or a specimen's), or the file name without its ending when
    the file cannot be read (the case then fails on its own with the reason)."""
    try:
        return named(path)
    except BonefeError:
        return path.stem


def cohort_cases(paths: list[Path]) -> dict[str, Path]:
    """Case name -> absolute case file, refusing two files (or one file twice) with the same name."""
    cases: dict[str, Path] = {}
    for path in (Path(p).resolve() for p in paths):
        name = case_name(path)
        if name in cases:
            raise BonefeError(f"cases {cases[name]} and {path} are both named '{name}': give every case "
                              "a unique `name` (and list each case file once)")
        cases[name] = path
    return cases


def default_launcher() -> list[str]:
    """The mpirun beside the interpreter (the venv's), else the first on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    found = str(beside) if beside.exists() else shutil.which("mpirun")
    if found is None:
        raise BonefeError("--ranks > 1 needs mpirun: put it on PATH or pass --launcher 'srun --mpi=pmix'")
    return [found]


def prepare(paths: list[Path], folder: Path, ranks: int = 1, mesh_size: float | None = None,
            launcher: str | None = None) -> Cohort:
    """Check the cases, create the batch folder and write its manifest (keeping earlier Slurm job ids)."""
    if not paths:
        raise BonefeError("no case files given: bonefe batch run CASE.yaml ... --out DIR")
    if ranks < 1:
        raise BonefeError(f"--ranks must be at least 1 (got {ranks})")
    folder = Path(folder).resolve()
    earlier = load_cohort(folder).slurm_jobs if (folder / MANIFEST).is_file() else []
    if earlier:
        refuse_if_queued(earlier, folder)
    cohort = Cohort(folder, cohort_cases(paths), ranks, mesh_size,
                    shlex.split(launcher) if launcher else default_launcher() if ranks > 1 else [], earlier)
    for sub in ("cases", "status", "logs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    cohort.save()
    return cohort


def load_cohort(folder: Path) -> Cohort:
    """Read a batch folder's manifest."""
    folder = Path(folder).resolve()
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BonefeError(f"{folder} is not a batch folder (no {MANIFEST}): start one with "
                          "bonefe batch run CASES... --out DIR") from None
    return Cohort(folder, {c["case"]: Path(c["file"]) for c in data["cases"]}, data["ranks"],
                  data["mesh_size_mm"], data["launcher"], data["slurm_jobs"])


def error_line(stderr: str) -> str:
    """The line that says what went wrong: the message of the last `bonefe: error:` line, else the
    last non-empty line (e.g. a traceback's exception)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    flagged = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    return (flagged or lines or [""])[-1][:ERROR_CHARS]


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    return f"exited with code {code}"


def case_error(code: int, stderr: str) -> str:
    """One line on why a case process that wrote no report failed (exit code, its stderr)."""
    if code > 0:
        return error_line(stderr) or _exit_reason(code)
    return _exit_reason(code) if code < 0 else "ended without writing its report"


def run_one(cohort: Cohort, name: str, slurm: dict | None = None) -> dict:
    """Run one case as a subprocess and record its status file; returns the final record.

    slurm: {"slurm_job": id, "index": array index} when run by a Slurm array task. The record's
    runtime_s is the wall time from `started` (epoch s) to the end of the case's process."""
    start = time.perf_counter()
    record = {"case": name, "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
              "started": time.time(), **(slurm or {})}
    atomic_write_json(cohort.status_path(name), record)
    with (open(cohort.log_path(name, "out"), "w", encoding="utf-8") as out,
          open(cohort.log_path(name, "err"), "w", encoding="utf-8") as err):
        try:
            code = subprocess.run(cohort.command(name), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                  cwd=cohort.folder).returncode
        except OSError as error:
            code, launch_error = 127, f"could not start the case: {error}"
        else:
            launch_error = ""
    runtime = time.perf_counter() - start
    done = code == 0 and cohort.is_done(name)
    error = "" if done else launch_error or case_error(code, cohort.log_path(name, "err").read_text(encoding="utf-8"))
    record.update(status="done" if done else "failed", runtime_s=round(runtime, 3), exit_code=code, error=error)
    if done:
        record["report"] = report_numbers(cohort, name)
    atomic_write_json(cohort.status_path(name), record)
    return record


def report_numbers(cohort: Cohort, name: str) -> dict:
    """The summary's numbers from a done case's report, stamped with the report's mtime (ns): a
    patient bone's risk and scores, a specimen's failure load and stiffness. The status file keeps
    them, so the summary, rewritten after every case, reads each report once rather than every
    report at every rewrite (a report that changed since is read again)."""
    path = cohort.report(name)
    stamp = path.stat().st_mtime_ns
    report = json.loads(path.read_text(encoding="utf-8"))
    mirels, axial = report.get("mirels") or {}, report.get("axial_involvement") or {}
    clinical = path.name == REPORTS[0]  # a patient bone's report always holds its risk
    return {"mtime_ns": stamp, "failure_load_n": report["failure_load_n"],
            "failure_load_bw": report["failure_load_bw"] if clinical else None,
            "risk_category": report["risk_category"] if clinical else None,
            "strain_fold_ratio": report.get("strain_fold_ratio"),
            "mirels_min": mirels.get("total_min"), "mirels_max": mirels.get("total_max"),
            "axial_involvement_mm": axial.get("length_mm"),
            "stiffness_n_per_mm": None if clinical else report["rig"].get("stiffness_n_per_mm")}


def read_status(cohort: Cohort, name: str) -> dict | None:
    try:
        return json.loads(cohort.status_path(name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _vanished(record: dict, slurm_tasks: set | None) -> bool:
    """A pending/running record whose Slurm task is no longer queued, or whose local process is gone."""
    if "slurm_job" in record and slurm_tasks is not None:
        return (str(record["slurm_job"]), int(record["index"])) not in slurm_tasks
    if "pid" in record and record.get("host") == socket.gethostname():
        return not _pid_alive(record["pid"])
    return False


def _vanished_error(record: dict, cohort: Cohort) -> str:
    if "slurm_job" not in record:
        return "interrupted: the batch stopped while this case ran; rerun the batch to retry it"
    job, index = record["slurm_job"], record["index"]
    state = ended_state(job, index)
    log = cohort.folder / "logs" / f"slurm-{job}_{index}.out"
    where = f"see {log}" if log.exists() else "it never started (cancelled?)"
    return f"Slurm task {job}_{index} ended without a result{f' ({state})' if state else ''}; {where}"


def summary_row(cohort: Cohort, name: str, slurm_tasks: set | None = None) -> dict:
    """One summary row: numbers from the case's report when done, else its status and error."""
    record = read_status(cohort, name) or {}
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(case=name, output=str(cohort.output(name)), error="",
               runtime_s=record.get("runtime_s") if record.get("status") in ("done", "failed") else None)
    if cohort.is_done(name):
        kept = record.get("report") or {}
        fresh = kept.get("mtime_ns") == cohort.report(name).stat().st_mtime_ns
        numbers = dict(kept if fresh else report_numbers(cohort, name))
        del numbers["mtime_ns"]
        row.update(status="done", **numbers)
    elif record.get("status") in ("running", "pending") and _vanished(record, slurm_tasks):
        row.update(status="failed", error=_vanished_error(record, cohort))
    elif record.get("status") in ("failed", "running", "pending"):
        row.update(status=record["status"], error=record.get("error", ""))
    else:
        row.update(status="pending")
    return row


@contextmanager
def _locked(path: Path, blocking: bool = True):
    """Hold an exclusive flock on `path` (created when missing) for the block."""
    with open(path, "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise BonefeError(f"another `bonefe batch run` is working in {path.parent}: wait for it "
                              "or stop it first") from None
        yield


def write_summary(cohort: Cohort) -> list[dict]:
    """Rewrite cohort-summary.csv and .json from the case folders and status files; returns the rows.

    Serialised by a lock file, so concurrent writers (Slurm array tasks) end with a complete summary."""
    slurm_tasks = queued_tasks() if cohort.slurm_jobs else None
    with _locked(cohort.folder / ".summary.lock"):
        rows = [summary_row(cohort, name, slurm_tasks) for name in cohort.cases]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        atomic_write_text(cohort.folder / "cohort-summary.csv", text.getvalue())
        atomic_write_json(cohort.folder / "cohort-summary.json", rows)
    return rows


def run_local(cohort: Cohort, jobs: int) -> list[dict]:
    """Run every case that is not done with `jobs` cases at a time; the summary is rewritten after
    each case. Returns the final summary rows."""
    if jobs < 1:
        raise BonefeError(f"--jobs must be at least 1 (got {jobs})")
    with _locked(cohort.folder / ".batch.lock", blocking=False):
        todo = [name for name in cohort.cases if not cohort.is_done(name)]
        print(f"bonefe batch: {len(cohort.cases)} cases, {len(cohort.cases) - len(todo)} already done; "
              f"running {len(todo)}, {jobs} at a time with {cohort.ranks} rank(s) each", flush=True)
        write_summary(cohort)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, cohort, name) for name in todo]
            for count, future in enumerate(as_completed(futures), start=1):
                record = future.result()
                print(f"[{count}/{len(todo)}] {_describe(record)}", flush=True)
                write_summary(cohort)
        return write_summary(cohort)


def _describe(record: dict) -> str:
    if record["status"] == "done":
        return f"{record['case']}: done in {record['runtime_s']:.1f} s"
    return f"{record['case']}: failed ({_exit_reason(record['exit_code'])}): {record['error']}"


def final_line(cohort: Cohort, rows: list[dict]) -> tuple[str, int]:
    """The closing line of a batch and its exit status (0 all done, 1 otherwise)."""
    summary = cohort.folder / "cohort-summary.csv"
    failed = [r["case"] for r in rows if r["status"] == "failed"]
    if failed:
        return (f"bonefe batch: {len(failed)} of {len(rows)} cases failed ({', '.join(failed)}): "
                f"see {summary} and {cohort.folder / 'logs'}; rerun to retry them"), 1
    unfinished = sum(r["status"] != "done" for r in rows)
    if unfinished:
        return f"bonefe batch: {unfinished} of {len(rows)} cases not finished yet; summary: {summary}", 1
    return f"bonefe batch: all {len(rows)} cases done; summary: {summary}", 0


def status_table(rows: list[dict]) -> str:
    """A plain-text table of the summary rows for the terminal."""
    lines = [f"{'case':<24} {'status':<8} {'runtime_s':>9} {'load_bw':>8} {'risk':<9} error"]
    for r in rows:
        runtime = "" if r["runtime_s"] is None else f"{r['runtime_s']:.1f}"
        load = "" if r["failure_load_bw"] is None else f"{r['failure_load_bw']:.2f}"
        lines.append(f"{r['case']:<24} {r['status']:<8} {runtime:>9} {load:>8} {r['risk_category'] or '':<9} "
                     f"{r['error']}".rstrip())
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "running", "pending")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)
