"""Read a mounted claim and print its manifest: the program a manifest or drill Job runs.

It runs in a Job's container as `python3 -c <this file's text> ROOT [options]`, so it
uses the standard library only and imports nothing of Soteria's. The last line it prints
is one JSON object (see backups/manifests.py, which parses and compares it):

  files, bytes        regular files under ROOT and their sizes (symlinks are not followed)
  sample              the SAMPLE regular files whose SHA-256 of their path is smallest (a
                      choice that depends on the set of paths only, so a restore samples the
                      same files as its source), each with size and SHA-256 of its content
  digest              SHA-256 over the sample's (path, size, sha256) lines
  changed_files/bytes with --since: files changed at or after that time (ctime or mtime), left
                      out of files/bytes/sample: they may differ from the backup's point in time
  errors, error_count what could not be read (path and reason; at most MAX_ERRORS listed)
  expected            with --expect: for each of these paths its size and SHA-256, or why not

--read-all reads every byte of every file (a drill: every unreadable block is found);
without it only the sample's files are read (a manifest at backup time: cheap).
"""

import argparse
import hashlib
import heapq
import json
import os
import stat
import sys
import time

FORMAT = "soteria-manifest/1"
MAX_ERRORS = 20
MAX_PATH = 1024  # longer paths are counted but never sampled (keeps a manifest small)
CHUNK = 1 << 20


def path_key(path):
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


def content(full):
    """(size read, sha256 hex) of a file's whole content; OSError when it cannot be read."""
    digest, size = hashlib.sha256(), 0
    with open(full, "rb") as handle:
        while True:
            block = handle.read(CHUNK)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def drain(full):
    with open(full, "rb") as handle:
        while handle.read(CHUNK):
            pass


def printable(path):
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read(root, sample_size, since, read_all, expect):
    report = {"format": FORMAT, "files": 0, "bytes": 0, "changed_files": 0, "changed_bytes": 0,
              "error_count": 0, "errors": [], "sample": [], "digest": "", "expected": {},
              "since": since, "read_all": read_all}
    heap = []  # (-key, path, size): the sample_size smallest keys

    def error(path, exc):
        report["error_count"] += 1
        if len(report["errors"]) < MAX_ERRORS:
            report["errors"].append({"path": printable(path), "error": exc.strerror or str(exc)})

    def walk_error(exc):
        error(os.path.relpath(exc.filename, root) if exc.filename else ".", exc)

    for directory, dirs, files in os.walk(root, onerror=walk_error):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, root)
            try:
                info = os.lstat(full)
            except OSError as exc:
                error(rel, exc)
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if since is not None and max(info.st_mtime, info.st_ctime) >= since:
                report["changed_files"] += 1
                report["changed_bytes"] += info.st_size
                continue
            report["files"] += 1
            report["bytes"] += info.st_size
            if read_all:
                try:
                    drain(full)
                except OSError as exc:
                    error(rel, exc)
                    continue
            if len(rel.encode("utf-8", "surrogateescape")) > MAX_PATH:
                continue
            entry = (path_key(rel), rel)
            if len(heap) < sample_size:
                heapq.heappush(heap, (_Reverse(entry[0]), rel))
            elif entry[0] < heap[0][0].key:
                heapq.heapreplace(heap, (_Reverse(entry[0]), rel))

    lines = []
    for _key, rel in sorted(heap, key=lambda item: item[0].key):
        try:
            size, sha = content(os.path.join(root, rel))
        except OSError as exc:
            error(rel, exc)
            continue
        report["sample"].append({"path": printable(rel), "size": size, "sha256": sha})
        lines.append(f"{printable(rel)}\0{size}\0{sha}\n")
    report["digest"] = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()

    for rel in expect:
        full = os.path.join(root, rel)
        if os.path.relpath(os.path.realpath(full), os.path.realpath(root)).startswith(".."):
            report["expected"][rel] = {"error": "outside the volume"}
            continue
        try:
            if not stat.S_ISREG(os.lstat(full).st_mode):
                report["expected"][rel] = {"error": "not a regular file"}
                continue
            size, sha = content(full)
            report["expected"][rel] = {"size": size, "sha256": sha}
        except FileNotFoundError:
            report["expected"][rel] = {"error": "missing"}
        except OSError as exc:
            report["expected"][rel] = {"error": exc.strerror or str(exc)}
    return report


class _Reverse:
    """A heap of the smallest keys is a min-heap of reversed keys."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __lt__(self, other):
        return self.key > other.key

    def __eq__(self, other):
        return self.key == other.key


def main(argv=None):
    parser = argparse.ArgumentParser(prog="soteria-manifest")
    parser.add_argument("root")
    parser.add_argument("--sample", type=int, default=32)
    parser.add_argument("--since", type=float, default=None, help="epoch seconds")
    parser.add_argument("--read-all", action="store_true")
    parser.add_argument("--expect", default="[]", help="JSON list of paths to hash")
    args = parser.parse_args(argv)
    started = time.time()
    if not os.path.isdir(args.root):
        print(f"soteria-manifest: {args.root} is not a directory", file=sys.stderr)
        return 2
    report = read(args.root, max(0, args.sample), args.since, args.read_all, json.loads(args.expect))
    report["seconds"] = round(time.time() - started, 3)
    sys.stdout.write(json.dumps(report, separators=(",", ":"), sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
