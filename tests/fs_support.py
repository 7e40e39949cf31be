"""Making a directory read-only for storage-fault tests, also as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


from ci_rule import missing_component


def make_read_only(path: Path) -> Iterator[None]:
    """chmod for ordinary users; root ignores permissions, so use the immutable attribute.

    Without a way to do it the test fails under CI=true (a broken set-up there) and skips
    elsewhere."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)],
                                        capture_output=True).returncode != 0:
        missing_component("read-only directory test",
                          "running as root without chattr +i: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
