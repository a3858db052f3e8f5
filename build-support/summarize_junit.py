"""Prints one pytest-style closing line ('N passed, N failed, N skipped') for a folder of JUnit XML."""

from __future__ import annotations

import pathlib
import sys
import xml.etree.ElementTree as ElementTree


def main(folder: str) -> int:
    passed = failed = skipped = 0
    for report in sorted(pathlib.Path(folder).rglob("*.xml")):
        for suite in ElementTree.parse(report).getroot().iter("testsuite"):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            failed += bad
            skipped += skip
            passed += tests - bad - skip
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
