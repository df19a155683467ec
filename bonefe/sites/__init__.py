"""Bone sites: what differs between bones lives in one sub-package per bone (`base` names the
interface; this package is the registry that knows them all, above every site)."""

from bonefe.errors import BonefeError
from bonefe.sites.base import Site

SITES = ("femur", "vertebra", "humerus")
"""Sites a clinical case file may name (`site:`); femur is the default."""
SPECIMEN = "specimen"
"""The test-machine site: a case of its own schema (`bonefe.sites.specimen`), not a patient's bone."""


def site_of(name: str) -> Site:
    """The site object of a site name (`SITES`)."""
    if name == "femur":
        from bonefe.sites.femur.site import FEMUR

        return FEMUR
    if name == "vertebra":
        from bonefe.sites.vertebra.site import VERTEBRA

        return VERTEBRA
    if name == "humerus":
        from bonefe.sites.humerus.site import HUMERUS

        return HUMERUS
    if name == SPECIMEN:
        from bonefe.sites.specimen.site import SPECIMEN as SPECIMEN_SITE

        return SPECIMEN_SITE
    raise BonefeError(f"unknown bone site '{name}': choose from {', '.join(SITES)}")


__all__ = ["SITES", "SPECIMEN", "site_of"]
