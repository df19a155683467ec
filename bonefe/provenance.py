"""Provenance helpers shared by the pipelines: input hashes (never paths or headers)."""

import hashlib
from pathlib import Path


def file_hash(path: Path) -> str:
    """sha256 of a file, or of every file of a folder (DICOM series) in name order."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()
