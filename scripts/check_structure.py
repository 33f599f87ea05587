#!/usr/bin/env python3
"""Checks that the libraries follow the folders (CI runs it; exit 1 with one line per problem).

- Every library is one folder: its CMakeLists.txt holds one upcycle_add_library, whose sources are
  the .cpp files of that folder and of subfolders without a CMakeLists.txt of their own; every .cpp
  of the source folders is in exactly one library (or is an executable's main).
- Includes follow the link graph: a file may include only headers of its own library or of a library
  it depends on (DEPS and PRIVATE_DEPS, transitively). No sideways edges, no cycles.
- LibTorch headers only in libraries that link LibTorch.
- core/process.cpp is the only place that forks, execs or spawns.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIRS = ["core", "tracking", "cluster", "stages", "analysis", "runner"]
MAINS = {"runner/main.cpp", "stages/jobs/job_main.cpp"}  # add_executable sources
SPAWNER = "core/process.cpp"
SPAWN_CALLS = re.compile(r"(?<![\w.>])(?:std::|::)?(fork|vfork|execv|execvp|execve|execvpe|execl|execlp|posix_spawnp?|popen|system)\s*\(")
TORCH_INCLUDE = re.compile(r'#include\s*<(torch|ATen|c10)/')
LOCAL_INCLUDE = re.compile(r'#include\s*"([^"]+)"')


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def libraries():
    """name -> {dir, sources, deps, torch}"""
    libs = {}
    for top in SOURCE_DIRS:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            if "CMakeLists.txt" not in files:
                continue
            rel = os.path.relpath(d, ROOT)
            text = re.sub(r"#[^\n]*", "", read(os.path.join(rel, "CMakeLists.txt")))
            for m in re.finditer(r"upcycle_add_library\(\s*(\w+)(.*?)\)", text, re.S):
                body = m.group(2)
                words = body.split()
                section, sources, deps = None, [], []
                for w in words:
                    if w in ("SOURCES", "DEPS", "PRIVATE_DEPS"):
                        section = w
                    elif section == "SOURCES":
                        sources.append(os.path.normpath(os.path.join(rel, w)))
                    elif w.startswith("upcycle::"):
                        deps.append(w[len("upcycle::"):])
                libs[m.group(1)] = {"dir": rel, "sources": sources, "deps": deps,
                                    "torch": "TORCH_LIBRARIES" in body, "cmake": os.path.join(rel, "CMakeLists.txt")}
    return libs


def owner_dirs(libs):
    return sorted(((l["dir"], n) for n, l in libs.items()), key=lambda x: -len(x[0]))


def owner(path, dirs):
    for d, n in dirs:
        if path == d or path.startswith(d + "/"):
            return n
    return None


def closure(libs, name, seen=None):
    seen = set() if seen is None else seen
    for dep in libs.get(name, {}).get("deps", []):
        if dep not in seen:
            seen.add(dep)
            closure(libs, dep, seen)
    return seen


def main():
    problems = []
    libs = libraries()
    dirs = owner_dirs(libs)
    per_dir = {}
    for n, l in libs.items():
        per_dir.setdefault(l["dir"], []).append(n)
    for d, names in per_dir.items():
        if len(names) > 1:
            problems.append(f"{d}/CMakeLists.txt: {len(names)} libraries ({', '.join(names)}); one per folder")
    all_files = []
    for top in SOURCE_DIRS:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".cpp", ".h")):
                    all_files.append(os.path.relpath(os.path.join(d, f), ROOT))
    listed = {}
    for n, l in libs.items():
        for s in l["sources"]:
            if owner(s, dirs) != n:
                problems.append(f"{l['cmake']}: {s} is outside the library's folder (it belongs to {owner(s, dirs)})")
            listed.setdefault(s, []).append(n)
    for f in all_files:
        if f.endswith(".cpp") and f not in MAINS and len(listed.get(f, [])) != 1:
            problems.append(f"{f}: in {len(listed.get(f, []))} libraries; every source is in exactly one")
        n = owner(f, dirs)
        if n is None:
            problems.append(f"{f}: in no library's folder")
            continue
        allowed = closure(libs, n) | {n}
        text = read(f)
        for line_no, line in enumerate(text.splitlines(), 1):
            m = LOCAL_INCLUDE.match(line.strip())
            if m and os.path.exists(os.path.join(ROOT, m.group(1))):
                target = owner(m.group(1), dirs)
                if target and target not in allowed:
                    problems.append(f"{f}:{line_no}: includes {m.group(1)} of {target}, which {n} does not depend on")
            if TORCH_INCLUDE.match(line.strip()) and not any(libs[x]["torch"] for x in allowed):
                problems.append(f"{f}:{line_no}: LibTorch header in {n}, a library without LibTorch")
            code = line.split("//")[0]
            if f != SPAWNER and SPAWN_CALLS.search(code) and not code.lstrip().startswith(("*", "#")):
                problems.append(f"{f}:{line_no}: starts a process; use core/process.h")
    for n in libs:
        if n in closure(libs, n):
            problems.append(f"{libs[n]['cmake']}: {n} depends on itself (a cycle)")
    for p in problems:
        print("check_structure: " + p)
    if not problems:
        print(f"check_structure: {len(libs)} libraries, {len(all_files)} files: libraries follow folders, "
              "includes follow dependencies, one process spawner")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
