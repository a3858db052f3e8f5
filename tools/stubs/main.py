"""`./pants generate`: writes the stubs Pants generated from `apis/` into `apis/stubs/python/`."""

from __future__ import annotations

import os
import pathlib
import sys

from tools.stubs import stubs


def main() -> int:
    # `pants run` starts us in the repo root; BUILDROOT lets the command be run from elsewhere.
    root = pathlib.Path(os.environ.get("BUILDROOT", os.getcwd())) / stubs.COMMITTED_DIR
    try:
        generated = stubs.generated_stubs()
    except stubs.StubsError as error:
        print(f"generate: {error}", file=sys.stderr)
        return 1
    changes = stubs.write(generated, root)
    summary = changes.describe()
    print(summary if summary else "generate: the committed stubs were already up to date")
    print(f"generate: {len(generated)} stub files in {stubs.COMMITTED_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
