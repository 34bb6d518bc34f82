"""Files the user names on the command line (``-o``, ``-i``, ``--cidfile``, ``--iidfile``,
``--env-file``, config files…): checked before anything is made, and their failures
worded as docker words them (Go's ``open PATH: no such file or directory``), never a
traceback."""

from __future__ import annotations

import errno
import os
from typing import BinaryIO

from imagefmt import errors


def go_strerror(err: OSError) -> str:
    """The error's text as Go's syscall.Errno prints it: lower case, no errno number."""
    text = err.strerror or os.strerror(err.errno or 0)
    return text[:1].lower() + text[1:]


def path_error(op: str, path: str, err: OSError) -> errors.DockyardError:
    """Go's *PathError as docker prints it (``open /x/y: no such file or directory``):
    NotFound for a missing file, else the base class (both exit 1)."""
    text = f"{op} {path}: {go_strerror(err)}"
    return errors.NotFound(text) if err.errno in (errno.ENOENT, errno.ENOTDIR) else errors.DockyardError(text)


def check_output(path: str, action: str) -> None:
    """docker's ValidateOutputPath for ``-o``: the file's directory must exist, and an
    existing path must be a regular file (or a directory, which the open then refuses).
    Raises NotFound (``failed to save image: invalid output path: stat /x: …``)."""
    parent = os.path.dirname(os.path.normpath(path))
    if parent not in ("", "."):
        try:
            os.stat(parent)
        except OSError as err:
            raise errors.NotFound(
                f"{action}: invalid output path: stat {parent}: {go_strerror(err)}"
            ) from None


def check_writable_dir(path: str, op: str = "open") -> None:
    """A file to be written once the work is done (``--iidfile``): its directory must
    exist now, so a long build does not end in an error.  Raises as path_error."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise path_error(op, path, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))


def check_input(path: str) -> None:
    """A file that will be read later (a config file, a certificate): it must be a
    readable file now.  Raises as path_error (``open /x: no such file or directory``)."""
    open_input(path).close()


def open_input(path: str) -> BinaryIO:
    """A file to read (``-i``, an import tarball), or docker's ``open PATH: …``."""
    try:
        return open(path, "rb")
    except OSError as err:
        raise path_error("open", path, err) from None
