"""For the data-parallel workers: record every file a process opens for writing, renames into place, removes
or creates as a folder under some folders (a Python audit hook), one path a line in ``<audit_dir>/rank<r>.writes``.
Install it before anything else is imported, so no write escapes it."""

import os
import sys


def record_writes(audit_dir: str, watched: tuple[str, ...]) -> None:
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
    watched = tuple(os.path.abspath(w) for w in watched)
    os.makedirs(audit_dir, exist_ok=True)
    log = open(os.path.join(audit_dir, f"rank{rank}.writes"), "a", buffering=1)  # line-buffered: a kill loses none

    def audit(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or \
                      (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            paths = [path] if writing else []
        elif event in ("os.rename", "os.replace"):
            paths = [args[1]]
        elif event in ("os.remove", "os.unlink", "os.mkdir"):
            paths = [args[0]]
        else:
            return
        for p in paths:
            if isinstance(p, (str, bytes, os.PathLike)):
                p = os.path.abspath(os.fsdecode(p))
                if p.startswith(watched):
                    log.write(p + "\n")

    sys.addaudithook(audit)
