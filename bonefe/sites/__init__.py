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


def case_name(path) -> str:
    """The `name` of any case file, a patient bone's or a specimen's, read and checked by its own
    schema (one-line BonefeError when it is invalid)."""
    from bonefe.case import load_case, read_yaml

    data = read_yaml(path)
    if isinstance(data, dict) and data.get("site") == SPECIMEN:
        from bonefe.sites.specimen.case import load_specimen_case

        return load_specimen_case(path).name
    return load_case(path).name


__all__ = ["SITES", "SPECIMEN", "case_name", "site_of"]
