"""Bone sites: what differs between bones lives in one sub-package per bone (`base` names the interface)."""

from bonefe.sites.base import SITES, site_of

__all__ = ["SITES", "site_of"]
