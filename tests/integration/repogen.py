"""Deterministic test repositories built at test time with `git fast-import`.

`large_repo(base)` gives a bare repository of well over 100k objects
(commits, trees, blobs, annotated tags, merges) that looks like a source
tree edited over a long history; `blob_repo(base, total_mib)` gives one of
big incompressible blobs for throughput measurements. Both are built once
under `base` (a session temporary directory, or the benchmark's work
directory) and reused while the marker file that ends a build exists, so
several tests share them. Nothing is downloaded: the content comes from a
seeded PRNG, so the same parameters give the same object ids.

Used as a module by the integration tests and by bench/transport.py; run
it directly (`python3 repogen.py DIR [large|blobs]`) to build by hand.
"""

import fcntl
import os
import random
import shutil
import subprocess
import sys
import time

# Sizes of the standard large repository: the initial tree holds
# DIRS x SUBDIRS x FILES files, and COMMITS commits each change CHANGES of
# them. Each commit adds about CHANGES blobs, up to 2*CHANGES+1 trees and
# itself: roughly 12 objects per commit.
DIRS = 16
SUBDIRS = 16
FILES = 16
COMMITS = 9000
CHANGES = 4
SEED = 20231123

EPOCH = 1600000000

_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
          "omicron pi rho sigma tau upsilon phi chi psi omega return if else for while "
          "struct int char void static const unsigned size_t error goto out buffer len "
          "read write open close free malloc memcpy strlen repository object commit "
          "tree blob tag ref branch merge rebase pack index delta").split()


def _git_env():
    env = dict(os.environ)
    env.update({
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "LANG": "C",
    })
    return env


def _line(rng):
    n = rng.randint(3, 12)
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _initial_text(rng):
    return "\n".join(_line(rng) for _ in range(rng.randint(10, 60))) + "\n"


def _edit(rng, text):
    """A small edit of text: a few lines replaced, inserted or removed, like
    a real commit, so packs get realistic deltas."""
    lines = text.split("\n")[:-1]
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(lines) + 1)
        if op < 0.5 and lines:
            lines[min(i, len(lines) - 1)] = _line(rng)
        elif op < 0.85 or not lines:
            lines.insert(i, _line(rng))
        else:
            del lines[min(i, len(lines) - 1)]
    return "\n".join(lines) + "\n"


def _data(out, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    out.write(b"data %d\n" % len(payload))
    out.write(payload)
    out.write(b"\n")


def _who(kind, when):
    return ("%s Dev <dev@example.com> %d +0000\n" % (kind, when)).encode()


def _large_stream(out, commits):
    """Writes the fast-import stream of the large repository to out."""
    rng = random.Random(SEED)
    paths = ["d%02d/s%02d/f%02d.c" % (d, s, f)
             for d in range(DIRS) for s in range(SUBDIRS) for f in range(FILES)]
    texts = {}
    mark = 0
    when = EPOCH
    # the initial import: every file
    mark += 1
    out.write(b"commit refs/heads/main\nmark :%d\n" % mark)
    out.write(b"author " + _who("Author", when))
    out.write(b"committer " + _who("Committer", when))
    _data(out, "initial import\n")
    for p in paths:
        texts[p] = _initial_text(rng)
        out.write(b"M 100644 inline %s\n" % p.encode())
        _data(out, texts[p])
    out.write(b"\n")
    main_tip = mark
    side = None
    for i in range(1, commits):
        when += 60
        mark += 1
        changed = rng.sample(paths, CHANGES)
        # every 500th commit starts a short side branch that is merged
        # back 5 commits later: the history gets merge commits
        if i % 500 == 250:
            side = main_tip
            branch = b"refs/heads/topic-%d" % i
        if side is not None and i % 500 in range(250, 255):
            ref = branch
            parent = side
        else:
            ref = b"refs/heads/main"
            parent = main_tip
        out.write(b"commit %s\nmark :%d\n" % (ref, mark))
        out.write(b"author " + _who("Author", when))
        out.write(b"committer " + _who("Committer", when))
        _data(out, "change %d: %s\n\n%s\n" % (i, changed[0], _line(rng)))
        out.write(b"from :%d\n" % parent)
        if ref == b"refs/heads/main" and side is not None and i % 500 == 255:
            out.write(b"merge :%d\n" % side)
            side = None
        for p in changed:
            texts[p] = _edit(rng, texts[p])
            out.write(b"M 100644 inline %s\n" % p.encode())
            _data(out, texts[p])
        out.write(b"\n")
        if ref == b"refs/heads/main":
            main_tip = mark
        else:
            side = mark
        if i % 1000 == 0:
            # a release branch and an annotated tag every 1000 commits
            out.write(b"reset refs/heads/release-%d\nfrom :%d\n\n" % (i // 1000, mark))
            out.write(b"tag v%d.0\nfrom :%d\n" % (i // 1000, mark))
            out.write(b"tagger " + _who("Tagger", when))
            _data(out, "release %d\n" % (i // 1000))
    out.write(b"done\n")


def _blob_stream(out, total_mib, blob_mib):
    """One commit holding total_mib MiB of random (incompressible) blobs."""
    rng = random.Random(SEED)
    n = max(1, total_mib // blob_mib)
    out.write(b"commit refs/heads/main\n")
    out.write(b"author " + _who("Author", EPOCH))
    out.write(b"committer " + _who("Committer", EPOCH))
    _data(out, "big blobs\n")
    for i in range(n):
        out.write(b"M 100644 inline big/blob-%03d.bin\n" % i)
        _data(out, rng.randbytes(blob_mib << 20))
    out.write(b"\n")
    out.write(b"done\n")


def _build(dest, writer, extra_config=()):
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    env = _git_env()
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", tmp], check=True, env=env)
    args = ["git"]
    for c in extra_config:
        args += ["-c", c]
    args += ["--git-dir", tmp, "fast-import", "--quiet", "--done"]
    # fast-import frees and reallocates big buffers for every object; with
    # glibc's default trim threshold each round trip is a pair of brk()
    # calls, which made a 127k-object import take minutes of system time
    # instead of seconds. A large top pad keeps the heap.
    env["MALLOC_TOP_PAD_"] = str(256 << 20)
    env["MALLOC_TRIM_THRESHOLD_"] = str(1 << 30)
    p = subprocess.Popen(args, stdin=subprocess.PIPE, env=env, bufsize=1 << 20)
    try:
        writer(p.stdin)
        p.stdin.close()
    finally:
        rc = p.wait()
    if rc != 0:
        raise RuntimeError("git fast-import failed with %d" % rc)
    subprocess.run(["git", "--git-dir", tmp, "symbolic-ref", "HEAD", "refs/heads/main"],
                   check=True, env=env)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)


def _cached(base, name, build):
    """Builds base/repogen/name once (under a lock) and returns its path."""
    root = os.path.join(base, "repogen")
    os.makedirs(root, exist_ok=True)
    dest = os.path.join(root, name + ".git")
    marker = dest + ".done"
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            started = time.time()
            build(dest)
            with open(marker, "w") as f:
                f.write("%.1f\n" % (time.time() - started))
    return dest


def large_repo(base, commits=COMMITS):
    """Path of the large repository under base (built on first use)."""
    return _cached(base, "large-%d" % commits,
                   lambda d: _build(d, lambda out: _large_stream(out, commits)))


def blob_repo(base, total_mib=512, blob_mib=64):
    """Path of a repository of total_mib MiB of incompressible blobs, stored
    uncompressed (pack.compression=0) so that building it costs no zlib.
    Blobs of 64 MiB are above gitaly's core.bigFileThreshold (50m), so
    pack-objects sends them as stored, without a delta search: a clone is
    then mostly transport."""
    return _cached(base, "blobs-%d-%d" % (total_mib, blob_mib),
                   lambda d: _build(d, lambda out: _blob_stream(out, total_mib, blob_mib),
                                    extra_config=("pack.compression=0", "core.compression=0",
                                                  "core.bigFileThreshold=1m")))


def build_seconds(path):
    """How long the build of a cached repository took (from its marker)."""
    with open(path + ".done") as f:
        return float(f.read())


def object_count(path):
    """Number of objects in the repository (packed and loose)."""
    out = subprocess.run(["git", "--git-dir", path, "count-objects", "-v"], check=True,
                         stdout=subprocess.PIPE, env=_git_env()).stdout.decode()
    vals = dict(line.split(": ", 1) for line in out.splitlines())
    return int(vals["count"]) + int(vals["in-pack"])


def refs(path):
    """{refname: object id} of every ref."""
    out = subprocess.run(["git", "--git-dir", path, "for-each-ref",
                          "--format=%(objectname) %(refname)"], check=True,
                         stdout=subprocess.PIPE, env=_git_env()).stdout.decode()
    return {r: o for o, r in (line.split(" ", 1) for line in out.splitlines())}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: repogen.py DIR [large|blobs]")
    what = sys.argv[2] if len(sys.argv) > 2 else "large"
    t = time.time()
    p = large_repo(sys.argv[1]) if what == "large" else blob_repo(sys.argv[1])
    print("%s: %d objects, %.1fs" % (p, object_count(p), time.time() - t))
