"""The bone-site interface: what differs between bones, in one place per bone.

`bonefe run` is one recipe for every bone (`bonefe.pipeline`): read → site anatomy → mesh →
material → solve and assess → report. What differs between bones comes from two objects:

- the **Site** (one per bone, `site_of(name)`): how to read its anatomy from the images (frame
  from the segmentation with overridable landmarks, crop and field-of-view rules, neighbours,
  inserted lesions), its clinical scores, the analyses only it has (the femur's sideways fall),
  what its assessment adds (the femur's hip-force envelope; the vertebra's unit loads and
  load-line envelope), the exports it supports, its report (wording, camera, assumptions) and
  the one-line summary;
- the **Setup** (the site bound to one case: `site.setup(case, frame)`): its support and load
  patches on the mesh (or none, when the site loads through its own operator), the bone model
  with its loading and evaluation region, the reference load whose failure load the report
  leads with, the activity library as `Load`s (which are exercise, accidents or scalable doses),
  the thresholds that turn a failure load into a risk category, and the laws its uncertainty
  study draws.

The generic stages (`bonefe.assessment`, `bonefe.whatif`, `bonefe.uncertainty`,
`bonefe.window`, `bonefe.pipeline`) take a Setup and never name a bone; they import this module
only. A failure load is always that of a `Load`'s unit load on the Setup's `BoneModel`.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np



@dataclass(frozen=True)
class Load:
    """One loading of a bone: a unit load scaled to 1 N (or 1 unit) of its peak, and its peak.

    unit: the model's load components, e.g. {patch: world force} (femur) or {"force", "moment"} in
    the frame (vertebra), summing to magnitude 1; peak_n: the load's peak magnitude (N);
    reference: its source; exercise: an exercise rather than a daily activity; accidental: an
    accident (stumbling), left out of the exercise window; dose: how a patient scales it
    (`bonefe.window.CARRIED`, `BAND`) or None; source: the site's own record of the activity."""

    name: str
    label: str
    unit: dict
    peak_n: float
    reference: str = ""
    exercise: bool = False
    accidental: bool = False
    dose: str | None = None
    source: Any = field(default=None, compare=False, repr=False)

    @property
    def peak(self) -> dict:
        """The load at its peak: every component of `unit` times peak_n."""
        return {k: np.asarray(v) * self.peak_n for k, v in self.unit.items()}


@dataclass
class Anatomy:
    """The read stage's output for one bone: the volume the model is built from (cropped, a
    lesion inserted, when the site does so), its frame, and what the site's scores and results
    need besides (`extras`, by name)."""

    volume: Any
    frame: Any
    extras: dict = field(default_factory=dict)


class Setup(Protocol):
    """A site bound to one case (module docstring). frame: the site's frame; body_mass_kg (kg)."""

    frame: Any
    body_mass_kg: float
    laws: tuple[str, ...]
    """The density–modulus laws the uncertainty study draws for `law` (`bonefe.uncertainty`)."""

    def mesh(self, volume, options, comm) -> tuple[Any, Any]:
        """The mesh stage: (`bonefe.meshing.BoneMesh`, facet tags of the patches or None)."""

    def model(self, mesh, facet_tags, E, labels, nu, risk, degree: int = 1, lesion=None):
        """The bone model (`bonefe.assessment.BoneModel`) of one material on one mesh; lesion: the
        CT's lesion map (`bonefe.materials.lesion_map`), required when labels hold lesion cells."""

    def reference(self) -> Load:
        """The load the failure load refers to (femur: walking; vertebra: standing, axial)."""

    def loads(self, names: list[str] | None, custom: list[dict]) -> list[Load]:
        """The activities assessed: those of the library named (all when None) and the case's own."""

    def thresholds(self, risk) -> Any:
        """The failure-load thresholds (× BW, `bonefe.risk.RiskThresholds`) of the risk categories."""

    def reference_strain(self, mesh, facet_tags, E, nu, degree: int = 1) -> Any:
        """Cell strain tensors (local cells, 3, 3) under the reference load scaled to 1 N, solving only
        what that needs (`bonefe.assessment.reference_failure`: the twin, what-if and uncertainty states)."""


class Site(Protocol):
    """One bone site (module docstring). lesion_sites: names for `--lesion-site`; scores: the
    clinical scores' names; camera: the view of the report's pictures; exports: the model exports
    it supports (`bonefe.pipeline`)."""

    name: str
    lesion_sites: tuple[str, ...]
    scores: tuple[str, ...]
    camera: str
    exports: tuple[str, ...]

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        """Write the site's procedural phantom (ct, labels, json) from CLI options; returns the paths."""

    def suitability(self, options) -> Any:
        """The case's scan checks (`bonefe.suitability.SuitabilityOptions`) with the site's field-of-view rule."""

    def anatomy(self, case, volume, raw_labels) -> Anatomy:
        """Frame (with the case's overrides), crop and inserted lesion of the read volume; raw_labels:
        the label map on the CT grid when read (None otherwise)."""

    def setup(self, case, frame) -> Setup:
        """The site bound to one case."""

    def bone(self, case) -> str:
        """The bone a case's scan shows, e.g. "left femur", "vertebra T8": scans of one bone over
        time (`bonefe followup`) must name the same."""

    def assess_more(self, setup: Setup, model, loads: list[Load], rows: list) -> dict:
        """Results the site adds to the generic assessment (envelopes, unit loads), by results key."""

    def analyses(self, case, setup: Setup, mesh, facet_tags, material, lesion) -> dict:
        """Results of analyses only this site has (femur: the sideways fall), by results key;
        lesion: the CT's lesion map (`bonefe.materials.lesion_map`)."""

    def scores_of(self, case, anatomy: Anatomy, twin_volume) -> dict:
        """The clinical scores (by results key) from the images."""

    def results(self, case, anatomy: Anatomy, assessment, setup: Setup) -> dict:
        """The site's own keys of the results dict (failure_load_case, ...)."""

    def assumptions(self, case) -> list[str]:
        """The site's sentences for the report's assumptions (supports, loads, evaluation region)."""

    def export_inp(self, path: Path, basis, facet_tags, E, nu, setup: Setup) -> None:
        """model.inp for CalculiX/Abaqus, when "inp" is among `exports`."""

    def write_report(self, out_dir: Path, results: dict, picture: dict | None) -> dict[str, Path]:
        """The report files (rank 0)."""

    def summary(self, case, results: dict) -> str:
        """The one line `bonefe run` prints."""


def twin_clause(results: dict) -> str:
    """The summary's "; lesion-free twin X kN (lesioned R x twin)" when the results carry a lesion-free
    twin's failure load (N), else "": the line `bonefe run` prints then shows the lesion's effect."""
    twin = results.get("twin_failure_load_n")
    if twin is None:
        return ""
    return f"; lesion-free twin {twin / 1000:.2f} kN (lesioned {results['failure_load_n'] / twin:.2f} x twin)"
