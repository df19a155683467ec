"""Bone sites: what differs between bones lives in one sub-package per bone (`base` names the
interface; this package is the registry that knows them all, above every site)."""

from bonefe.errors import BonefeError
from bonefe.sites.base import Site

SITES = ("femur", "vertebra", "humerus")
"""Sites a case file may name (`site:`); femur is the default."""


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
    raise BonefeError(f"unknown bone site '{name}': choose from {', '.join(SITES)}")


__all__ = ["SITES", "site_of"]
