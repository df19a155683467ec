"""The `bonefe` command."""

import argparse
import sys
from pathlib import Path

from bonefe import __version__
from bonefe.errors import BonefeError

DESCRIPTION = """\
CT-based finite-element fracture risk for bones with metastases.

  bonefe phantom --out DIR [--lesion-site neck --lesion-diameter 20]
      write a synthetic proximal-femur CT and label map to try things on
  bonefe run CASE.yaml
      mesh -> material -> solve -> risk -> report for one case
      (in parallel: mpirun -n 4 bonefe run CASE.yaml; results do not depend on the rank count)

Units: mm, N, MPa. Reports show strain in microstrain and loads in N and times body weight."""


def main(argv=None) -> int:
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
    phantom.add_argument("--lesion-site", "--lesion", default="neck",
                         choices=["neck", "intertrochanteric", "subtrochanteric", "diaphysis", "none"],
                         help="where the lesion sits (default: neck)")
    phantom.add_argument("--lesion-type", default="lytic", choices=["lytic", "blastic"])
    phantom.add_argument("--lesion-diameter", "--size", type=float, default=20.0, metavar="MM",
                         help="lesion diameter in mm (default: 20)")
    phantom.add_argument("--cortical-involvement", type=float, default=0.5, metavar="FRACTION",
                         help="fraction 0-1 of the local cortex the lesion erodes (default: 0.5)")
    phantom.add_argument("--side", default="left", choices=["left", "right"])
    phantom.add_argument("--voxel", type=float, default=1.0, metavar="MM", help="voxel size in mm (default: 1)")
    phantom.add_argument("--noise", type=float, default=0.0, metavar="HU", help="CT noise std in HU (default: 0)")
    phantom.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    phantom.add_argument("--format", default="nii.gz", choices=["nii.gz", "mha", "nrrd"])
    phantom.set_defaults(command=_phantom)

    run = commands.add_parser("run", help="run one case: mesh, material, solve, risk, report")
    run.add_argument("case", type=Path, help="case file (YAML)")
    run.add_argument("--output", type=Path, help="output folder (default: the case's `output`)")
    run.add_argument("--mesh-size", type=float, metavar="MM", help="override mesh.size_mm")
    run.add_argument("--quiet", action="store_true", help="print only the final summary")
    run.set_defaults(command=_run)
    return parser


def _phantom(args) -> int:
    from bonefe.phantom import PhantomSpec, write_phantom
    from bonefe.schema import build

    spec = build(PhantomSpec, {
        "side": args.side, "voxel_mm": args.voxel, "noise_hu": args.noise, "seed": args.seed,
        "lesion_site": None if args.lesion_site == "none" else args.lesion_site,
        "lesion_type": args.lesion_type, "lesion_diameter_mm": args.lesion_diameter,
        "cortical_involvement": args.cortical_involvement,
    }, "phantom")
    paths = write_phantom(spec, args.out, fmt=args.format)
    for kind, path in paths.items():
        print(f"{kind:>8}: {path}")
    return 0


def _run(args) -> int:
    from bonefe.pipeline import run_case

    run_case(args.case, output=args.output, mesh_size=args.mesh_size, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
