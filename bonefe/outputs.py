"""Atomic outputs: a file or a case folder appears whole or not at all, and a failed run never
destroys earlier results."""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def default_mode() -> int:
    """Permissions of a newly created file under the current umask (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path` (same ending); it replaces `path` only if the block succeeds.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ending = "".join(path.suffixes[-2:]) if path.name.endswith((".nii.gz", ".tar.gz")) else path.suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=ending)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


@contextmanager
def staged_folder(final: Path, comm):
    """Yield `<final>.partial` to write into; on success it replaces `final` in one rename.

    On failure the partial folder stays for inspection (unless nothing was written into it: a
    refused input leaves no folder) and `final` keeps the earlier results. Collective over `comm`: rank 0 moves folders, every rank may write inside.
    """
    final = Path(final)
    partial = final.with_name(final.name + ".partial")
    if comm.rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    comm.barrier()
    try:
        yield partial
    except BaseException:
        if comm.rank == 0 and partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()
        raise
    comm.barrier()
    if comm.rank == 0:
        previous = final.with_name(final.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        if final.exists():
            final.rename(previous)
        partial.rename(final)
        shutil.rmtree(previous, ignore_errors=True)
    comm.barrier()
