"""How far the phantom femur's failure load moves with its uncertain inputs: the study of
`bonefe.uncertainty` (what `bonefe run --uncertainty` runs) on the default phantom at the default
mesh size, shown next to the failure load. Full set only (several re-meshes)."""

from __future__ import annotations

from bonefe.assessment import RiskOptions
from bonefe.case import MeshOptions
from bonefe.materials import MaterialOptions
from bonefe.sites.femur.phantom import DEMO_LESION, PhantomSpec, make_phantom
from bonefe.sites.femur.site import FemurSetup
from bonefe.uncertainty import Study, UncertaintyOptions, markdown_table, propagate
from bonefe.validation.checks import Section
from bonefe.validation.femur import BODY_MASS_KG

SAMPLES = 19


def uncertainty_section() -> Section:
    """The one-at-a-time effects and the combined interval of the stance failure load."""
    spec, options = PhantomSpec(**DEMO_LESION), UncertaintyOptions(samples=SAMPLES)
    volume, frame = make_phantom(spec)
    study = Study(volume, FemurSetup(frame, BODY_MASS_KG), MaterialOptions(), MeshOptions(), RiskOptions())
    result = propagate(study, options)
    text = (f"The demo's phantom femur (20 mm lytic lesion through the infero-medial neck cortex, "
            f"{spec.voxel_mm:g} mm voxels) at the default "
            f"mesh size {MeshOptions().size_mm:g} mm, {BODY_MASS_KG:g} kg, stance failure load; `bonefe.uncertainty` "
            f"with its defaults and {SAMPLES} Monte-Carlo samples (method in that module's docstring). Reported, "
            "not asserted: it measures the model's sensitivity, not its agreement with a reference.\n\n"
            + markdown_table(result))
    return Section("Uncertainty of the failure load", text)
