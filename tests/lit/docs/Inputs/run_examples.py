"""Runs every example of a Markdown document through nnc and compares.

usage: run_examples.py NNC DOC.md WORKDIR

docs/language.md is a reference whose examples are tests: this script finds
its fenced blocks by their info string and runs each one:

  ```nn [ARGS]      a complete file: `nnc FILE ARGS` must exit 0
  ```nn-error [ARGS]  ... must exit 1 (an invalid file)
  ```repl           a session: the lines after `nnc> ` and `...  ` are fed on
                    standard input; every other line is the expected output
  ```repl-error     ... and some entry fails: exit status 1
  ```output         right after an nn block: what it must print (standard
                    output and error together), exactly
  ```file NAME      a data file (a table): written as NAME beside the next
                    nn or repl block's example, for its options to read

Each file is written as example.nn in a fresh directory under WORKDIR and
run from there, so diagnostics read `example.nn:LINE:COL`. In expected
output a `…` stands for any text within its line (timings). Every block is
run even after a failure; the status is 1 if any failed, with each failure
shown as a diff, located by its line in the document.
"""
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys

PROMPT, MORE = "nnc> ", "...  "  # as wide as each other, as on the terminal
KINDS = {"nn": 0, "nn-error": 1, "repl": 0, "repl-error": 1}


def blocks(text):
    """(line, info word, its arguments, body) of each fenced block, in order,
    line 1-based. Fences as CommonMark has them: three or more backticks and
    an info string without one, closed by a line of at least as many."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(`{3,})([^`]*)$", lines[i])
        if not m:
            i += 1
            continue
        start, fence, body = i + 1, m.group(1), []
        i += 1
        while i < len(lines) and not re.match(r"^%s`*\s*$" % fence, lines[i]):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            sys.exit("%d: unterminated %s block" % (start, fence))
        info = m.group(2).split(None, 1) + ["", ""]
        out.append((start, info[0], info[1].strip(), "".join(l + "\n" for l in body)))
        i += 1
    return out


def matches(want, got):
    """Line by line, `…` matching any text within a line."""
    w, g = want.splitlines(), got.splitlines()
    if len(w) != len(g):
        return False
    return all(re.fullmatch(".*".join(map(re.escape, a.split("…"))), b) for a, b in zip(w, g))


def run(nnc, cwd, args, stdin):
    env = dict(os.environ, NO_COLOR="1", NNC_THREADS="1")
    p = subprocess.run([nnc] + args, cwd=cwd, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    return p.returncode, p.stdout


def main():
    nnc, doc, work = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    found = blocks(open(doc, encoding="utf-8").read())
    failures = ran = 0
    used = set()  # the output blocks that follow an nn block
    files = {}  # the file blocks before the next example
    for n, (line, kind, args, body) in enumerate(found):
        if kind == "file":
            files[args] = body
            continue
        if kind == "output" and n not in used:
            failures += 1
            print("%s:%d: ```output block that follows no ```nn block" % (doc, line))
        if kind not in KINDS:
            continue
        want = None
        if kind.startswith("nn") and n + 1 < len(found) and found[n + 1][1] == "output":
            want = found[n + 1][3]
            used.add(n + 1)
        cwd = os.path.join(work, "%d" % line)
        os.makedirs(cwd)
        for name, text in files.items():
            with open(os.path.join(cwd, name), "w", encoding="utf-8") as f:
                f.write(text)
        files = {}
        if kind.startswith("repl"):
            typed = (PROMPT, MORE)
            entries = [l[len(PROMPT):] for l in body.splitlines() if l.startswith(typed)]
            want = "".join(l + "\n" for l in body.splitlines() if not l.startswith(typed))
            status, got = run(nnc, cwd, shlex.split(args), "".join(e + "\n" for e in entries))
        else:
            with open(os.path.join(cwd, "example.nn"), "w", encoding="utf-8") as f:
                f.write(body)
            status, got = run(nnc, cwd, ["example.nn"] + shlex.split(args), None)
        ran += 1
        problems = []
        if status != KINDS[kind]:
            problems.append("exit status %d, expected %d" % (status, KINDS[kind]))
        if want is not None and not matches(want, got):
            problems.append("output differs:\n" + "".join(difflib.unified_diff(
                want.splitlines(True), got.splitlines(True), "expected", "nnc printed")))
        if problems:
            failures += 1
            print("%s:%d: ```%s block: %s" % (doc, line, kind, "; ".join(problems)))
            if want is None:
                print(got, end="")
    print("%d examples, %d failures" % (ran, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
