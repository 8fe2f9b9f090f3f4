#!/usr/bin/env python3
"""Splits the workspace's test targets into the suite's two lanes.

Reads `cargo metadata --no-deps` on stdin; the arguments name the targets of the second lane
(the rig's, as PACKAGE:TARGET). Prints the cargo arguments that select every other test target,
one per line, so that a new test file lands in the first lane without being listed anywhere.
Fails when a named target does not exist or its name is not unique in the workspace: a renamed
rig test must not drop out of both lanes unnoticed.
"""

import json
import sys


def main() -> int:
    meta = json.load(sys.stdin)
    tests = [
        (pkg["name"], target["name"])
        for pkg in meta["packages"]
        for target in pkg["targets"]
        if "test" in target["kind"]
    ]
    second = []
    for arg in sys.argv[1:]:
        pkg, _, name = arg.partition(":")
        if (pkg, name) not in tests:
            print(f"lanes.py: no test target {name!r} in package {pkg!r}", file=sys.stderr)
            return 1
        if sum(1 for _, n in tests if n == name) != 1:
            print(f"lanes.py: test target name {name!r} is not unique in the workspace", file=sys.stderr)
            return 1
        second.append(name)
    for _, name in sorted(tests, key=lambda t: t[1]):
        if name not in second:
            print("--test")
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
