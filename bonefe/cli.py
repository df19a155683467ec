"""The `bonefe` command."""

import argparse
import codecs
import os
import sys
from pathlib import Path

from bonefe import __version__
from bonefe.errors import BonefeError

DESCRIPTION = """\
CT-based finite-element fracture risk for bones with metastases.

  bonefe phantom --out DIR [--lesion-site neck --lesion-diameter 20]
      write a synthetic proximal-femur CT and label map to try things on
  bonefe phantom --site vertebra --level L1 --lesion-site central|posterior-wall|pedicle|... --out DIR
      a synthetic vertebra (cortical shell, endplates, trabecular core, posterior elements) with a lesion
  bonefe phantom --site humerus --lesion-site surgical_neck|proximal_shaft|mid_shaft|distal --out DIR
      a synthetic humerus (head, tuberosity, shaft; cortex, marrow, trabecular bone) with a lesion
  bonefe phantom --surface OUTER.stl [--inner INNER.stl] --out DIR [--voxel 1 --lesion-site ...]
      the same from a real bone surface (STL/VTK/PLY, mm): cortex, trabecular bone, lesion
      (--body tissues[+rods]: inside a body with air, fat, muscle, a vessel [and a rod phantom])
  bonefe run CASE.yaml
      mesh -> material -> solve -> risk -> report for one case
      (site: specimen: a bone in a virtual test machine, reaction force, stiffness; docs/specimens.md)
      (in parallel: mpirun -n 4 bonefe run CASE.yaml; results do not depend on the rank count)
  bonefe followup BASELINE.yaml LATER.yaml [...] [--registration affine] [--horizon-months 12]
      scans of one bone over time: registration, lesion change, failure load on one mesh, course
  bonefe batch run CASES... --out DIR [--jobs J] [--ranks R] [--slurm]
      a cohort, one process per case (or a Slurm job array); rerun to resume; bonefe batch status DIR
  bonefe patient run PATIENT.yaml [--output DIR] [--jobs J] [--ranks R] [--slurm]
      one patient's bones (a case each), one report: worst verdict per activity, walking-aid conflicts
  bonefe calibrate OUTCOMES.csv --cohort DIR --out CALDIR  |  bonefe calibrate --specimens S.csv ...
      ROC/AUC of the risk predictors against fracture outcomes -> calibration.json; or fit modulus_scale
  bonefe validate [--quick] [--out docs/validation.md] [--femur-surface OUTER.stl [--femur-inner INNER.stl]]
      rerun the validation suite (analytic, CalculiX, mesh convergence, experiments) and rewrite the report

Units: mm, N, MPa. Reports show strain in microstrain and loads in N and times body weight."""


def main(argv=None) -> int:
    _printable_output()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except BonefeError as error:
        print(f"bonefe: error: {error}", file=sys.stderr, flush=True)
        _stop_other_ranks(2)
        return 2
    except KeyboardInterrupt:
        print("bonefe: interrupted", file=sys.stderr)
        return 130


def _printable_output() -> None:
    """The units' symbols (R², N·mm, g/cm³) never end a run in UnicodeEncodeError: an ASCII-only
    locale (e.g. LC_ALL=C with PYTHONUTF8=0, as on bare containers) writes UTF-8, Python's own
    default from 3.15 (PEP 686); any other encoding escapes what it cannot encode."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            ascii_only = codecs.lookup(stream.encoding or "ascii").name == "ascii"
            stream.reconfigure(**({"encoding": "utf-8"} if ascii_only else {}), errors="backslashreplace")


def _stop_other_ranks(code: int) -> None:
    """Under MPI an error may be raised on some ranks only (e.g. rendering on rank 0) while the
    others wait in a collective call: abort the whole job so it ends with `code` instead of hanging."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1:
        MPI.COMM_WORLD.Abort(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bonefe", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"bonefe {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    phantom = commands.add_parser("phantom", help="write a synthetic proximal-femur CT + label map")
    phantom.add_argument("--out", type=Path, required=True, help="output folder")
    phantom.add_argument("--site", default="femur", choices=["femur", "vertebra", "humerus"],
                         help="which bone (default: femur)")
    phantom.add_argument("--level", default="L1", help="--site vertebra: spinal level, C1-L5 (default: L1)")
    phantom.add_argument("--lesion-site", "--lesion",
                         help="where the lesion sits, one of the site's lesion sites or none (default: neck = "
                              "neck_superolateral; vertebra: central; humerus: mid_shaft)")
    phantom.add_argument("--lesion-type", default="lytic", choices=["lytic", "blastic"])
    phantom.add_argument("--lesion-diameter", "--size", type=float, metavar="MM",
                         help="lesion diameter in mm (default: 20; vertebra: 15; humerus: 16)")
    phantom.add_argument("--cortical-involvement", type=float, default=0.5, metavar="FRACTION",
                         help="fraction 0-1 of the local cortex the lesion erodes (default: 0.5)")
    phantom.add_argument("--side", default="left", choices=["left", "right"])
    phantom.add_argument("--age", type=float, metavar="YEARS",
                         help="procedural femur: thin the neck cortex superiorly as in women of this age, 25-85 "
                              "(Poole et al. 2010; default: a uniform 3 mm neck cortex)")
    phantom.add_argument("--voxel", type=float, metavar="MM", help="voxel size in mm (default: 1; vertebra: 0.6)")
    phantom.add_argument("--noise", type=float, default=0.0, metavar="HU", help="CT noise std in HU (default: 0)")
    phantom.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    phantom.add_argument("--format", default="nii.gz", choices=["nii.gz", "mha", "nrrd"])
    phantom.add_argument("--body", choices=["tissues", "tissues+rods"],
                         help="put the femur in a body (air, fat, muscle, a vessel) seen by a non-ideal "
                              "scanner, with a rod phantom for tissues+rods; --noise then sets the "
                              "scanner noise (default 15 HU)")
    phantom.add_argument("--surface", type=Path, metavar="OUTER",
                         help="real bone surface (STL/VTK/PLY, mm, closed): build the phantom from it")
    phantom.add_argument("--inner", type=Path, metavar="INNER",
                         help="with --surface: endosteal surface (default: a cortical thickness model)")
    phantom.set_defaults(command=_phantom)

    run = commands.add_parser("run", help="run one case: mesh, material, solve, risk, report")
    run.add_argument("case", type=Path, help="case file (YAML)")
    run.add_argument("--output", type=Path, help="output folder (default: the case's `output`)")
    run.add_argument("--mesh-size", type=float, metavar="MM", help="override mesh.size_mm")
    run.add_argument("--quiet", action="store_true", help="print only the final summary")
    run.add_argument("--uncertainty", nargs="?", type=int, const=True, default=False, metavar="N",
                     help="also compute the failure load's sensitivity and interval (the case's `uncertainty` "
                          "section or its defaults; N: Monte-Carlo samples)")
    run.set_defaults(command=_run)

    followup = commands.add_parser("followup", help="follow-up scans of one bone: change, course, projection")
    followup.add_argument("cases", type=Path, nargs="+", metavar="CASE",
                          help="case files (YAML), the baseline first; later ones give days_since_baseline")
    followup.add_argument("--output", type=Path, help="output folder (default: the baseline's output + -followup)")
    followup.add_argument("--mesh-size", type=float, metavar="MM", help="override mesh.size_mm of every scan")
    followup.add_argument("--registration", default="rigid", choices=["rigid", "affine"])
    followup.add_argument("--horizon-months", type=float, default=12.0, metavar="M",
                          help="projection horizon in months (default: 12)")
    followup.add_argument("--quiet", action="store_true", help="print only the final summary")
    followup.set_defaults(command=_followup)

    batch = commands.add_parser("batch", help="run a cohort of cases locally or on Slurm (see docs/hpc.md)")
    batch_commands = batch.add_subparsers(title="batch commands", metavar="BATCH_COMMAND", required=True)
    batch_run = batch_commands.add_parser("run", help="run (or resume) every case not yet done")
    batch_run.add_argument("cases", type=Path, nargs="+", metavar="CASE", help="case files (YAML)")
    batch_run.add_argument("--out", type=Path, required=True, help="batch folder (cases/, status/, summary)")
    _cohort_options(batch_run)
    batch_run.set_defaults(command=_batch_run)
    batch_status = batch_commands.add_parser("status", help="print the cohort table and rewrite the summary")
    batch_status.add_argument("out", type=Path, metavar="DIR", help="batch folder")
    batch_status.set_defaults(command=_batch_status)
    batch_task = batch_commands.add_parser("task", help="run case INDEX of a batch folder (what a Slurm array task runs)")
    batch_task.add_argument("out", type=Path, metavar="DIR", help="batch folder")
    batch_task.add_argument("index", type=int, help="case index (0-based, order of batch.json)")
    batch_task.set_defaults(command=_batch_task)

    patient = commands.add_parser("patient", help="one patient, several bones: each bone's run, one report "
                                                  "(see docs/patient.md)")
    patient_commands = patient.add_subparsers(title="patient commands", metavar="PATIENT_COMMAND", required=True)
    patient_run = patient_commands.add_parser("run", help="run every bone not yet done and write the patient report")
    patient_run.add_argument("patient", type=Path, help="patient file (YAML)")
    patient_run.add_argument("--output", type=Path, help="output folder (default: the patient file's `output`)")
    _cohort_options(patient_run)
    patient_run.set_defaults(command=_patient_run)
    patient_report = patient_commands.add_parser("report", help="rewrite the patient report (after a Slurm run)")
    patient_report.add_argument("out", type=Path, metavar="DIR", help="patient output folder")
    patient_report.set_defaults(command=_patient_report)

    validate = commands.add_parser("validate", help="run the validation suite and rewrite docs/validation.md")
    validate.add_argument("--quick", action="store_true", help="the reduced set that CI asserts (~2 min)")
    validate.add_argument("--out", type=Path, default=Path("docs/validation.md"),
                          help="report path; pictures go to images/ beside it (default: docs/validation.md)")
    validate.add_argument("--femur-surface", type=Path, metavar="OUTER.stl",
                          help="also run the neck-lesion models on this real femur surface (mm)")
    validate.add_argument("--femur-inner", type=Path, metavar="INNER.stl",
                          help="its endosteal surface (default: the phantom's cortical thickness model)")
    validate.set_defaults(command=_validate)

    calibrate = commands.add_parser(
        "calibrate", help="calibrate risk thresholds against fracture outcomes, or the modulus against tests",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=CALIBRATE_HELP)
    calibrate.add_argument("outcomes", type=Path, nargs="?", metavar="OUTCOMES.csv",
                           help="outcomes: columns case, fractured (yes/no, 1/0, true/false)[, follow_up_months]")
    calibrate.add_argument("--cohort", type=Path, metavar="DIR_OR_CSV",
                           help="batch folder or its cohort-summary.csv (bonefe batch)")
    calibrate.add_argument("--out", type=Path, required=True, metavar="CALDIR", help="output folder")
    calibrate.add_argument("--specimens", type=Path, metavar="S.csv",
                           help="material mode: columns case, measured_failure_load_n (N); for specimen "
                                "cases also measured_stiffness_n_per_mm (docs/specimens.md)")
    calibrate.add_argument("--target-sensitivity", type=float, default=1.0, metavar="T",
                           help="sensitivity that 'not low risk' must reach, 0-1 (default: 1.0)")
    calibrate.add_argument("--bootstrap", type=int, default=2000, metavar="B",
                           help="bootstrap replicates for the AUC intervals (default: 2000)")
    calibrate.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    calibrate.set_defaults(command=_calibrate)
    return parser


def _cohort_options(parser) -> None:
    """Options of the batch machinery (`bonefe batch run`, `bonefe patient run`): local jobs, MPI ranks, Slurm."""
    parser.add_argument("--jobs", type=int, metavar="J", help="cases at a time locally (default: cores / ranks)")
    parser.add_argument("--ranks", type=int, default=1, metavar="R", help="MPI ranks per case (default: 1)")
    parser.add_argument("--mesh-size", type=float, metavar="MM", help="override mesh.size_mm of every case")
    parser.add_argument("--launcher", metavar="CMD",
                        help="MPI launcher when R > 1, given `-n R` (default: the mpirun beside Python)")
    parser.add_argument("--slurm", action="store_true", help="submit a Slurm job array instead of running here")
    parser.add_argument("--memory", default="4G", help="Slurm: memory per case, sbatch --mem (default: 4G)")
    parser.add_argument("--time", default="02:00:00", help="Slurm: time limit per case (default: 02:00:00)")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="Slurm: extra #SBATCH option, e.g. --sbatch=--partition=short (repeatable)")
    parser.add_argument("--template", type=Path, help="Slurm: job-script template (default: hpc/bonefe-array.sbatch.in)")


def _jobs(args) -> int:
    """--jobs, or as many cases at a time as the cores allow with --ranks each."""
    return args.jobs if args.jobs is not None else max(1, len(os.sched_getaffinity(0)) // args.ranks)


def _slurm_options(args):
    from bonefe.cohort.slurm import SlurmOptions

    return SlurmOptions(args.memory, args.time, args.sbatch, args.template)


def _phantom(args) -> int:
    """`bonefe phantom`: the procedural femur, or (--surface) a real bone surface made into a CT."""
    from bonefe.schema import build
    from bonefe.sites import site_of

    if args.site != "femur":
        return _site_phantom(args)
    lesion_site, names = args.lesion_site or "neck", site_of("femur").lesion_sites
    if lesion_site not in (*names, "none"):
        raise BonefeError(f"--lesion-site {lesion_site} is not a femur site: choose from {', '.join(names)}")
    common = {
        "side": args.side, "voxel_mm": 1.0 if args.voxel is None else args.voxel, "noise_hu": args.noise, "seed": args.seed,
        "lesion_site": None if lesion_site == "none" else lesion_site,
        "lesion_type": args.lesion_type, "lesion_diameter_mm": 20.0 if args.lesion_diameter is None else args.lesion_diameter,
        "cortical_involvement": args.cortical_involvement,
    }
    if args.surface is None and args.inner is not None:
        raise BonefeError("--inner needs --surface OUTER (the periosteal surface)")
    if args.surface is not None and args.age is not None:
        raise BonefeError("--age shapes the procedural femur's neck cortex; leave it out with --surface")
    if args.surface is None:
        from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
        from bonefe.phantom_body import BodySpec

        body = None
        if args.body:
            body = BodySpec(rods=args.body == "tissues+rods", noise_hu=args.noise or 15.0, seed=args.seed)
            common = {**common, "noise_hu": 0.0}
        paths = write_phantom(build(PhantomSpec, {**common, "age_years": args.age}, "phantom"), args.out,
                              fmt=args.format, body=body)
    else:
        from bonefe.sites.femur.surface_phantom import SurfaceSpec, write_surface_phantom

        surfaces = {"outer": str(args.surface), "inner": args.inner and str(args.inner)}
        paths = write_surface_phantom(build(SurfaceSpec, {**surfaces, **common}, "phantom"), args.out,
                                      fmt=args.format)
    for kind, path in paths.items():
        print(f"{kind:>8}: {path}")
    return 0


PHANTOM_DEFAULTS = {"vertebra": {"lesion_site": "central", "lesion_diameter_mm": 15.0, "voxel_mm": 0.6},
                    "humerus": {"lesion_site": "mid_shaft", "lesion_diameter_mm": 16.0, "voxel_mm": 1.0}}
"""`bonefe phantom` defaults of the sites other than the femur's."""


def _site_phantom(args) -> int:
    """`bonefe phantom --site vertebra|humerus`: the site's procedural phantom (`Site.write_phantom`)."""
    from bonefe.sites import site_of

    site, defaults = site_of(args.site), PHANTOM_DEFAULTS[args.site]
    lesion_site = args.lesion_site or defaults["lesion_site"]
    if lesion_site not in (*site.lesion_sites, "none"):
        raise BonefeError(f"--lesion-site {lesion_site} is not a {site.name} site: choose from "
                          f"{', '.join(site.lesion_sites)}")
    if args.surface is not None or args.body or args.age is not None:
        raise BonefeError(f"--surface, --body and --age are femur options; leave them out with --site {site.name}")
    options = {"lesion_site": None if lesion_site == "none" else lesion_site, "lesion_type": args.lesion_type,
               "lesion_diameter_mm": defaults["lesion_diameter_mm"] if args.lesion_diameter is None else args.lesion_diameter,
               "voxel_mm": defaults["voxel_mm"] if args.voxel is None else args.voxel, "noise_hu": args.noise,
               "seed": args.seed}
    options.update({"level": args.level} if site.name == "vertebra" else
                   {"side": args.side, "cortical_involvement": args.cortical_involvement})
    for kind, path in site.write_phantom(options, args.out, args.format).items():
        print(f"{kind:>8}: {path}")
    return 0


def _run(args) -> int:
    from bonefe.pipeline import run_case
    from bonefe.sites import SPECIMEN
    from bonefe.sites.specimen.case import case_site

    if case_site(args.case) == SPECIMEN:
        from bonefe.sites.specimen.run import run_specimen

        if args.uncertainty is not False:
            raise BonefeError("--uncertainty applies to the patient bone sites (femur, vertebra, humerus), not to "
                              "a specimen: drop the flag, or vary the specimen's material in a series of cases")

        run_specimen(args.case, output=args.output, mesh_size=args.mesh_size, quiet=args.quiet)
        return 0
    run_case(args.case, output=args.output, mesh_size=args.mesh_size, quiet=args.quiet,
             uncertainty=args.uncertainty)
    return 0


def _followup(args) -> int:
    from bonefe.followup import run_followup

    run_followup(args.cases, output=args.output, mesh_size=args.mesh_size, registration=args.registration,
                 horizon_months=args.horizon_months, quiet=args.quiet)
    return 0


def _batch_run(args) -> int:
    from bonefe.cohort.batch import prepare, run_local, status_table, write_summary
    from bonefe.cohort.slurm import submit

    cohort = prepare(args.cases, args.out, args.ranks, args.mesh_size, args.launcher)
    if args.slurm:
        cohort, job = submit(cohort, _slurm_options(args))
        rows = write_summary(cohort)
        if job is None:
            return _batch_finish(cohort, rows)
        pending = sum(r["status"] != "done" for r in rows)
        print(f"bonefe batch: submitted Slurm job array {job} ({pending} cases); "
              f"follow it with: bonefe batch status {cohort.folder}")
        return 0
    rows = run_local(cohort, _jobs(args))
    print(status_table(rows))
    return _batch_finish(cohort, rows)


def _batch_finish(cohort, rows) -> int:
    """Print the batch's closing line; exit status 0 when every case is done, else 1."""
    from bonefe.cohort.batch import final_line

    line, code = final_line(cohort, rows)
    print(line)
    return code


def _batch_status(args) -> int:
    from bonefe.cohort.batch import load_cohort, status_table, write_summary

    print(status_table(write_summary(load_cohort(args.out))))
    return 0


def _batch_task(args) -> int:
    from bonefe.cohort.slurm import run_task

    return run_task(args.out, args.index, os.environ.get("SLURM_ARRAY_JOB_ID"))


def _patient_run(args) -> int:
    from bonefe.patient.run import run_patient, summary_line

    folder, report, job = run_patient(args.patient, args.output, _jobs(args), args.ranks, args.mesh_size,
                                      args.launcher, _slurm_options(args) if args.slurm else None)
    if job is not None:
        print(f"bonefe patient: submitted Slurm job array {job} and the report job after it; "
              f"follow it with: bonefe patient report {folder}")
        return 0
    print(summary_line(report, folder))
    return 0 if not report["missing"] else 1


def _patient_report(args) -> int:
    from bonefe.patient.run import summary_line, write_report

    print(summary_line(write_report(args.out), args.out))
    return 0


CALIBRATE_HELP = """\
Risk mode:      bonefe calibrate OUTCOMES.csv --cohort DIR_OR_SUMMARY.csv --out CALDIR
                [--target-sensitivity 1.0] [--bootstrap 2000] [--seed 0]
  Joins outcomes with the cohort summary (done cases only) and, per predictor (failure_load_bw:
  lower is riskier; strain_fold_ratio, Mirels midpoint (min+max)/2, axial_involvement_mm: higher is
  riskier), writes ROC, AUC with a stratified bootstrap 95 % CI, Youden and target-sensitivity
  cut-points into CALDIR: calibration.json (risk.calibration_file of a case: high_below_bw = Youden
  cut of failure_load_bw, low_from_bw = max(Youden, target-sensitivity cut)), roc.png and
  calibration-report.md.
Material mode:  bonefe calibrate --specimens S.csv [--cohort DIR_OR_SUMMARY.csv] --out CALDIR
  Fits the modulus scale s (material.modulus_scale) by least squares on log failure loads,
  ln F_measured = ln s + ln F_predicted; predicted loads from the cohort summary (failure_load_n of
  the case ids in S.csv), or without --cohort by running the case files S.csv names. Writes
  material-fit.json, material-fit.png and material-fit.md (s, SE, 95 % t CI, R², RMSE).
  When S.csv names specimen cases (site: specimen), each runs in its rig and the power law's
  scale (and exponent) is fitted to measured_stiffness_n_per_mm and the strain limits to
  measured_failure_load_n, with 95 % intervals and leave-one-out errors: specimen-fit.json/.md/.png."""


def _calibrate(args) -> int:
    def warn(message: str) -> None:
        print(f"bonefe calibrate: warning: {message}", file=sys.stderr, flush=True)

    if (args.outcomes is None) == (args.specimens is None):
        raise BonefeError("give either OUTCOMES.csv (risk calibration) or --specimens S.csv (material fit), "
                          "not both or neither")
    if args.specimens is not None:
        from bonefe.cohort.material_fit import run_material_fit
        from bonefe.sites.specimen.fit import is_specimen_table, run_specimen_fit, summary

        if is_specimen_table(args.specimens):  # specimen cases: run each in its rig (docs/specimens.md)
            result, paths = run_specimen_fit(args.specimens, args.out)
            print(f"{summary(result)}: {paths['fit']}")
            return 0

        fit, paths = run_material_fit(args.specimens, args.cohort, args.out)
        print(f"modulus_scale {fit.scale:.4g} (95 % CI {fit.ci95[0]:.4g}-{fit.ci95[1]:.4g}, n {fit.n}, "
              f"R² log {fit.r2_log:.3f}, RMSE {fit.rmse_n:.0f} N): {paths['fit']}")
        return 0
    if args.cohort is None:
        raise BonefeError("risk calibration needs --cohort DIR (a bonefe batch folder or its cohort-summary.csv)")
    from bonefe.cohort.cohort_calibration import run_calibration

    cal, paths = run_calibration(args.outcomes, args.cohort, args.out, args.target_sensitivity,
                                 args.bootstrap, args.seed, warn)
    for name, result in cal.results.items():
        low, high = result.auc_ci
        print(f"{name:<22} AUC {result.auc:.3f} [{low:.3f}, {high:.3f}]  n {len(result.cases)}")
    print(f"risk thresholds: high below {cal.high_below_bw:.4g} BW, low from {cal.low_from_bw:.4g} BW: "
          f"{paths['calibration']}")
    return 0



def _validate(args) -> int:
    from bonefe.validation import run_validation

    if args.femur_inner is not None and args.femur_surface is None:
        raise BonefeError("--femur-inner needs --femur-surface OUTER.stl (the periosteal surface)")
    surface = None if args.femur_surface is None else (args.femur_surface, args.femur_inner)
    sections, seconds = run_validation(args.out, quick=args.quick, surface=surface)
    outside = [c.name for s in sections for c in s.checks if c.passed is False]
    print(f"bonefe validate: {args.out} written in {seconds / 60:.1f} min; "
          f"{len(outside)} check(s) outside their bound{': ' + '; '.join(outside) if outside else ''}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
