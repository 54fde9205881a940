"""Print one closing line summing JUnit XML reports: `tests: N passed, N failed, N skipped`.

scripts/test.sh runs two pytest sessions (host and VM); this is the line that counts both.
Only the standard library: it runs under the system's python3.
"""

import sys
import xml.etree.ElementTree as ET


def totals(paths):
    passed = failed = skipped = 0
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            continue
        suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
        for suite in suites:
            try:
                tests = int(suite.get("tests", 0))
                bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
                skip = int(suite.get("skipped", 0))
            except ValueError:
                continue  # not pytest's report: count nothing rather than guess
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    return passed, failed, skipped


if __name__ == "__main__":
    p, f, s = totals(sys.argv[1:])
    print(f"tests: {p} passed, {f} failed, {s} skipped")
