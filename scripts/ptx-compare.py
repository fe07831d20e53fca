#!/usr/bin/env python3
"""ptx-compare: shows that a change left the CUDA kernels that already existed untouched.

    scripts/ptx-compare.py BASE [--build build] [SOURCE...]

Compiles each CUDA source (default: every src/cuda/*.cu) to PTX twice, at git revision BASE (a
temporary worktree) and in the working tree, with the exact nvcc command of the CMake build in
--build, and compares the PTX kernel by kernel. A kernel that gained template parameters matches
its old self when the new ones are false (the pattern of a knob-gated form kept out of the
default kernels' code). Line information, label numbers and the hashes of anonymous namespaces
are ignored. Prints one line per kernel that differs or disappeared and a summary; exit status 0
when every kernel of BASE is unchanged, 1 when some differ, 2 on a usage or build error.

For sessions without a GPU: a change whose default kernels compare equal cannot have changed what
the last device run measured; the new kernels still need one.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

ANON = re.compile(r"_GLOBAL__N__[0-9a-f]+_\d+_\w+?_cu_[0-9a-f]+|_INTERNAL_[0-9a-f]+_\d+_\w+?_cu_[0-9a-f]+")


def nvcc_command(build, repo, source):
    """The build's compile command for source, as a list, writing PTX to a placeholder."""
    rel = os.path.relpath(source, repo)
    targets = subprocess.run(["ninja", "-C", build, "-t", "targets", "all"], capture_output=True, text=True,
                             check=True).stdout
    obj = next((line.split(":")[0] for line in targets.splitlines()
                if line.split(":")[0].endswith(os.path.basename(rel) + ".o")), None)
    if obj is None:
        raise RuntimeError(f"{rel}: no object file in {build} (configured with CUDA?)")
    cmd = subprocess.run(["ninja", "-C", build, "-t", "commands", obj], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    words = shlex.split(cmd)
    out, skip = [], 0
    for i, w in enumerate(words):
        if skip:
            skip -= 1
            continue
        if w in ("-o", "-MF", "-MT"):
            skip = 1
            continue
        if w in ("-c", "-MD") or w.startswith("--generate-code=arch=compute_90,code=[compute_90]"):
            continue
        out.append(w)
    return out + ["-ptx", "-o", "@PTX@"]


def compile_ptx(cmd, repo_from, repo_to, ptx):
    words = [w.replace(repo_from, repo_to) for w in cmd]
    words = [ptx if w == "@PTX@" else w for w in words]
    r = subprocess.run(words, capture_output=True, text=True, cwd=repo_to)
    if r.returncode != 0:
        raise RuntimeError(f"nvcc failed in {repo_to}:\n{r.stderr[-2000:]}")


def kernels(ptx_path):
    text = open(ptx_path).read()
    found = {}
    for m in re.finditer(r"\.entry\s+(\S+)\(", text):
        name = m.group(1)
        i = text.index("{", m.end())
        depth, j = 0, i
        while True:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        body = text[m.start():j + 1].replace(name, "FN")
        body = re.sub(r"\$L__BB\d+_", "$L__BB_", body)
        body = re.sub(r"\b([A-Z]+_)\d+\b", r"\1", body)           # labels inside inline asm
        body = re.sub(r"_ZZ\w+?E\d+([A-Za-z_]\w*)", r"SHM_\1", body)   # function-local statics
        body = ANON.sub("ANON", body)
        body = "\n".join(l for l in body.splitlines() if not l.strip().startswith((".loc", ".file", "//")))
        found[ANON.sub("ANON", name)] = body
    return found


def old_names(name):
    """The names this kernel could have had before trailing false template parameters were added:
    itself, then with one, two, ... trailing `false` arguments removed."""
    yield name
    m = re.search(r"I((?:L\w+?E)+)EEv", name)
    if not m:
        return
    args = re.findall(r"L\w+?E", m.group(1))
    while args and args[-1] == "Lb0E":
        args.pop()
        repl = ("I" + "".join(args) + "EEv") if args else "E"
        yield name[:m.start()] + repl + name[m.end():]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="git revision to compare with")
    ap.add_argument("sources", nargs="*", help="CUDA sources (default: src/cuda/*.cu)")
    ap.add_argument("--build", default="build", help="CMake build directory configured with CUDA (default: build)")
    a = ap.parse_args()
    repo = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True).stdout.strip()
    if not repo:
        print("ptx-compare: not inside a git checkout", file=sys.stderr)
        return 2
    build = os.path.join(repo, a.build) if not os.path.isabs(a.build) else a.build
    sources = a.sources or sorted(os.path.join(repo, "src/cuda", f) for f in os.listdir(os.path.join(repo, "src/cuda"))
                                  if f.endswith(".cu"))
    changed = same = added = 0
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = os.path.join(tmp, "base")
        if subprocess.run(["git", "-C", repo, "worktree", "add", "--detach", "-q", base_tree, a.base]).returncode != 0:
            return 2
        try:
            for src in sources:
                src = os.path.abspath(src)
                rel = os.path.relpath(src, repo)
                if not os.path.exists(os.path.join(base_tree, rel)):
                    print(f"{rel}: new file (nothing to compare)")
                    continue
                cmd = nvcc_command(build, repo, src)
                before, after = os.path.join(tmp, "before.ptx"), os.path.join(tmp, "after.ptx")
                compile_ptx(cmd, repo, base_tree, before)
                compile_ptx(cmd, repo, repo, after)
                kb, ka = kernels(before), kernels(after)
                by_old = dict(ka)   # exact names first
                for k, v in ka.items():
                    for n in old_names(k):
                        by_old.setdefault(n, v)
                for k, v in kb.items():
                    if k not in by_old:
                        print(f"{rel}: gone or renamed: {k}")
                        changed += 1
                    elif by_old[k] != v:
                        print(f"{rel}: differs: {k}")
                        changed += 1
                    else:
                        same += 1
                added += len(ka) - len(kb)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"ptx-compare: {e}", file=sys.stderr)
            return 2
        finally:
            subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", base_tree])
    print(f"{same} kernels unchanged, {changed} changed or gone, {added:+d} kernels in all")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
