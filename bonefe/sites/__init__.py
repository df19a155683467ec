"""Bone sites: what differs between bones lives in one sub-package per bone (`base` names the interface)."""

SITES = ("femur", "vertebra")
"""Sites a case file may name (`site:`); femur is the default."""
