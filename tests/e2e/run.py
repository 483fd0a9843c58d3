#!/usr/bin/env python3
"""Runs golb's end-to-end tests: tests/e2e/test_*.py (unittest style), in file order.

    python3 tests/e2e/run.py --bindir bin [-k PATTERN]... [-v] [--tls]

Each test starts its own golb / toy-backend processes on ephemeral loopback ports (see
tests/support/golbtest.py). Prints one line per test, then each failure with its traceback, its
captured output and the tail of every process log, and ends with exactly `N passed, M failed`
(`, K skipped` when some were skipped). Exit status 1 on any failure. When GOLB_RESULTS names a
file, "passed failed" is appended to it (scripts/test.sh adds up every layer).

Environment: GOLB_TEST_TIMEOUT_SCALE multiplies every deadline (the ASan run sets it higher);
GOLB_TEST_LIMIT caps each test's wall time in seconds before scaling (default 90).
"""

import argparse
import fnmatch
import os
import shutil
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit (GOLB_TEST_LIMIT x GOLB_TEST_TIMEOUT_SCALE)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


class Result(unittest.TestResult):
    """Prints a line per test; keeps failures with output and process logs for the summary.
    Each test counts once: failed if anything in it failed (subtest, cleanup), else skipped or ok."""

    def __init__(self, limit):
        super().__init__()
        self.buffer = True  # captured stdout/stderr are attached to failures by unittest
        self.limit = limit
        self.outcome = {}   # test id -> "ok" | "skip" | "FAIL"
        self.reports = []
        self._t0 = 0.0
        self._note = ""

    def _set(self, test, status, note=""):
        tid = test.id()
        if self.outcome.get(tid) != "FAIL":
            self.outcome[tid] = status
            self._note = note

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.monotonic()
        self._note = ""
        signal.setitimer(signal.ITIMER_REAL, self.limit)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._mirrorOutput = False  # captured output goes into the failure report, not inline
        super().stopTest(test)
        dt = time.monotonic() - self._t0
        status = self.outcome.setdefault(test.id(), "ok")
        tmp = getattr(test, "tmp", None)
        if status == "FAIL":
            for r in self.reports:
                if r["test"] == test.id():
                    r["duration"] = dt
        elif tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{status:5} {test.id()} ({dt:.2f}s){self._note}", flush=True)

    def _record(self, kind, test, err, case=None):
        case = case or test
        self._set(case, "FAIL")
        text = self._exc_info_to_string(err, case) if err else ""
        logs = case.proc_logs() if hasattr(case, "proc_logs") else []
        self.reports.append({"kind": kind, "id": test.id(), "test": case.id(), "text": text,
                             "logs": logs, "tmp": getattr(case, "tmp", None)})

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record("FAIL", test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record("ERROR", test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skip", f": {reason}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "ok", " (expected failure)")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record("UNEXPECTED SUCCESS", test, None)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record("FAIL", subtest, err, case=test)

    def count(self, status):
        return sum(1 for v in self.outcome.values() if v == status)


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def matches(test_id, patterns):
    if not patterns:
        return True
    return any(p in test_id or fnmatch.fnmatch(test_id, p) for p in patterns)


def main():
    ap = argparse.ArgumentParser(description="golb end-to-end tests")
    ap.add_argument("--bindir", default="bin", help="directory holding golb and toy-backend")
    ap.add_argument("-k", action="append", default=[], metavar="PATTERN",
                    help="run only tests whose id contains PATTERN (or matches it as a glob)")
    ap.add_argument("-v", action="store_true", help="print every process log of failing tests whole")
    ap.add_argument("--tls", action="store_true",
                    help="TLS mode: golb gets an HTTPS listener and the tests' HTTPConn clients use it")
    args = ap.parse_args()

    os.environ["GOLB_BINDIR"] = os.path.abspath(args.bindir)
    if args.tls:
        os.environ["GOLB_TEST_TLS"] = "1"
    import golbtest  # after GOLB_BINDIR is set

    golbtest.BINDIR = os.environ["GOLB_BINDIR"]
    for b in ("toy-backend", "golb"):
        if not os.access(os.path.join(golbtest.BINDIR, b), os.X_OK):
            print(f"warning: {golbtest.BINDIR}/{b} is missing: tests that need it fail", flush=True)

    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = []
    for t in iter_tests(suite):
        if isinstance(t, unittest.loader._FailedTest):  # import error in a test file: a failure
            tests.append(t)
        elif matches(t.id(), args.k):
            tests.append(t)
    if not tests:
        print("no tests matched" if args.k else "no tests found")
        print("0 passed, 1 failed")
        return 1

    limit = float(os.environ.get("GOLB_TEST_LIMIT", "90")) * golbtest.SCALE
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _interrupt)
    result = Result(limit)
    t0 = time.monotonic()
    interrupted = False
    try:
        for t in tests:
            t(result)
            golbtest.kill_all()  # nothing a test started outlives it
            if result.shouldStop:
                break
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted", flush=True)
    finally:
        golbtest.kill_all()

    for r in result.reports:
        print()
        print("=" * 100)
        print(f"{r['kind']}: {r['id']}  ({r.get('duration', 0):.2f}s)")
        print("-" * 100)
        print(r["text"].rstrip())
        for name, pid, text in r["logs"]:
            lines = text.splitlines()
            shown = lines if args.v else lines[-60:]
            cut = "" if len(shown) == len(lines) else f", last {len(shown)} of {len(lines)} lines"
            print(f"--- log of {name} (pid {pid}{cut}):")
            print("\n".join(shown))
        if r["tmp"]:
            print(f"--- files kept in {r['tmp']}")

    passed, failed, skipped = result.count("ok"), result.count("FAIL"), result.count("skip")
    if interrupted:
        failed += 1
    print()
    print(f"e2e: {time.monotonic() - t0:.1f}s")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    res = os.environ.get("GOLB_RESULTS")
    if res:
        with open(res, "a") as f:
            f.write(f"{passed} {failed}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
