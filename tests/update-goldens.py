#!/usr/bin/env python3
"""Regenerates the CHECK lines of nnc's golden lit tests from the current build.

    tests/update-goldens.py [--nnc PATH] [--check] [FILE...]

With no FILE, every .nn and .test file under tests/lit that opts in. After a
change to what an --emit stage prints, run it and review the diff (as LLVM's
update_test_checks.py is used): the goldens are not edited by hand. --check
writes nothing and exits 1 if any golden would change, printing the diff, so
ctest catches a stale golden and a script that no longer reproduces its own
output (tests/CMakeLists.txt runs it).

Which files and lines it touches
--------------------------------
Only files with a marker line

    # UPDATE: golden            (the prefix CHECK)
    # UPDATE: golden AST IR     (the prefixes AST and IR)

and, in them, only the block of each named prefix. Each prefix has exactly one
RUN line, of the form

    # RUN: [env VAR=VALUE...] %nnc ARGS | FileCheck %s [--check-prefix=P] --match-full-lines [...]

(%s and %S are substituted as lit does; nothing else). Everything else in the
file -- prose, RUN lines, the model, other prefixes' hand-written checks -- is
left as it is. A file whose checks are picked by hand (CHECK-NOT, captures,
a few lines of a long dump) carries no marker and is never touched.

The block
---------
The block of prefix P runs from its first P directive line to its last and
holds the whole of the command's standard output, one line each:

    # P:      first line            (P-NEXT: for the lines after it,
    # P-NEXT: second line            P-EMPTY: for an empty line)
    # P-NOT:  {{.+}}                 (nothing but empty lines after the last)

aligned as above, or with no space after the colon under --strict-whitespace
(FileCheck then compares the whitespace too). `[[` and `{{` in the output are
written as FileCheck regexes ({{\\[\\[}}). A file with no block yet gets one at
its end. Since a block may sit above the model, and the output carries source
lines (@12:5), the file is rewritten until it is stable.

Comments inside a block
-----------------------
A run of `#` lines inside the block that are not directives (an explanation of
the next line of the dump) belongs to the directive line after it. When the
block is rewritten, the comment goes before the new line with the same text
(lines matched in order, as diff matches them; source positions such as
@12:5 are not compared, since any edit above them moves them). If that line changed or went
away, the comment goes before the line now at its place and a warning names
it: check it still says something true. A comment is never dropped.
Non-comment lines inside a block are an error, as are missing or ambiguous
RUN lines and a command that fails: the script stops with status 2, and the
file is left as it was.

Uses the Python 3 standard library only.
"""
import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"^\s*#\s*UPDATE:\s*golden\b(.*)$")
RUN = re.compile(r"^\s*#\s*RUN:\s*(.*)$")
# How many times a file is rewritten before it must be stable (the block above
# the model moves the model's lines once; a second pass confirms).
MAX_PASSES = 4


class GoldenError(Exception):
    pass


def directive(line, prefix):
    """(kind, text) if the line is a directive of prefix, kind '' for P:."""
    m = re.match(r"^\s*#\s*" + re.escape(prefix) + r"(|-NEXT|-EMPTY|-NOT|-DAG|-SAME|-LABEL|-COUNT-\d+):(.*)$",
                 line)
    return (m.group(1), m.group(2)) if m else None


def any_directive(line, prefixes):
    return any(directive(line, p) for p in prefixes)


def is_comment(line):
    return line.lstrip().startswith("#")


def filecheck_runs(lines, path):
    """(line number, command before the pipe or '', FileCheck's words, its
    prefixes) of each RUN line that runs FileCheck."""
    runs = []
    for number, line in enumerate(lines, 1):
        m = RUN.match(line)
        if not m or "FileCheck" not in m.group(1):
            continue
        cmd, _, check = m.group(1).rpartition("|")
        try:
            check_words = shlex.split(check)
        except ValueError as e:
            raise GoldenError(f"{path}:{number}: {e}")
        prefixes = []
        for i, w in enumerate(check_words):
            if w.startswith(("--check-prefix=", "--check-prefixes=")):
                prefixes += w.split("=", 1)[1].split(",")
            elif w in ("--check-prefix", "--check-prefixes") and i + 1 < len(check_words):
                prefixes += check_words[i + 1].split(",")
        runs.append((number, cmd, check_words, prefixes or ["CHECK"]))
    return runs


def golden_run(lines, prefix, path):
    """The arguments, environment and --strict-whitespace of prefix's RUN line."""
    runs = [r for r in filecheck_runs(lines, path) if prefix in r[3]]
    if len(runs) != 1:
        raise GoldenError(f"{path}: prefix {prefix} needs exactly one FileCheck RUN line, found {len(runs)}")
    number, cmd, check_words, _ = runs[0]
    where = f"{path}:{number}"
    if lines[number - 1].rstrip().endswith("\\"):
        raise GoldenError(f"{where}: a golden's RUN line must be one line")
    if not cmd or check_words[:2] != ["FileCheck", "%s"]:
        raise GoldenError(f"{where}: expected 'COMMAND | FileCheck %s ...'")
    if "--match-full-lines" not in check_words:
        raise GoldenError(f"{where}: a golden checks whole lines: add --match-full-lines")
    try:
        words = shlex.split(cmd)
    except ValueError as e:
        raise GoldenError(f"{where}: {e}")
    env = {}
    if words and words[0] == "env":
        words.pop(0)
        while words and "=" in words[0] and not words[0].startswith("%"):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
    if not words or words[0] != "%nnc":
        raise GoldenError(f"{where}: a golden's command must be '[env VAR=VALUE...] %nnc ARGS'")
    for w in words[1:]:
        if re.search(r"%[^sS]|%$|[<>;&|]", w):
            raise GoldenError(f"{where}: unsupported word {w!r} in a golden's command (only %s and %S)")
    return words[1:], env, "--strict-whitespace" in check_words


def run_nnc(nnc, args, env, text, path):
    """nnc's standard output for args, %s being a copy of text named like path."""
    with tempfile.TemporaryDirectory(prefix="update-goldens.") as tmp:
        copy = os.path.join(tmp, os.path.basename(path))
        with open(copy, "w") as f:
            f.write(text)
        argv = [nnc] + [a.replace("%s", copy).replace("%S", os.path.dirname(os.path.abspath(path)))
                        for a in args]
        full_env = dict(os.environ, NO_COLOR="1", **env)
        p = subprocess.run(argv, env=full_env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if p.returncode != 0:
            raise GoldenError(f"{path}: '{' '.join(argv)}' exited with {p.returncode}:\n{p.stderr}")
        return p.stdout.replace(copy, os.path.abspath(path))


def escape(text):
    """Output text as a FileCheck pattern: [[ and {{ would start one."""
    return re.sub(r"\[\[|\{\{", lambda m: "{{\\[\\[}}" if m.group(0) == "[[" else "{{\\{\\{}}", text)


def render(prefix, kind, text, strict):
    """One directive line: the text aligned under P-NEXT:'s, or, when
    FileCheck compares whitespace, right after the colon."""
    tag = f"{prefix}{kind}:"
    if strict or not text:
        return f"# {tag}{text}"
    return f"# {tag.ljust(len(prefix) + len('-NEXT: '))}{text}"


def new_directives(prefix, output, strict):
    """The block's directive lines for output: (payload to match, line)."""
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines and not lines[0].strip():
        raise GoldenError(f"the output starts with an empty line, which {prefix}: cannot match")
    out = []
    for i, line in enumerate(lines):
        text = escape(line if strict else line.strip())
        kind = "" if i == 0 else "-NEXT" if text else "-EMPTY"
        out.append((text, render(prefix, kind, text, strict)))
    out.append(("\0end", render(prefix, "-NOT", "{{.+}}", strict)))
    return out


def old_block(lines, prefix, prefixes, path):
    """(start, end, [(payload, attached comment lines)]) of prefix's block."""
    at = [i for i, line in enumerate(lines) if directive(line, prefix)]
    if not at:
        return None
    start, end = at[0], at[-1] + 1
    items, pending = [], []
    for i in range(start, end):
        line = lines[i]
        d = directive(line, prefix)
        if d:
            kind, text = d
            items.append(("\0end" if kind == "-NOT" else text.strip(), pending))
            pending = []
        elif is_comment(line) and not RUN.match(line) and not MARKER.match(line) \
                and not any_directive(line, prefixes):
            pending.append(line)
        else:
            raise GoldenError(f"{path}:{i + 1}: only comments may sit inside the {prefix} block: {line!r}")
    return start, end, items


def matched(payload):
    """What a line is matched by: its text, less the source positions
    (@12:5), which move whenever the file above them is edited."""
    return re.sub(r"@\d+:\d+", "@L:C", payload.strip())


def place_comments(old_items, new, path, prefix, warnings):
    """The new block's lines, each old comment before its line's counterpart."""
    before = [[] for _ in range(len(new) + 1)]
    old_payloads = [matched(p) for p, _ in old_items]
    new_payloads = [matched(p) for p, _ in new]
    ops = difflib.SequenceMatcher(None, old_payloads, new_payloads, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        for i in range(i1, i2):
            comment = old_items[i][1]
            if not comment:
                continue
            if tag == "equal":
                j = j1 + (i - i1)
            else:
                j = min(j1 + (i - i1), max(j1, j2 - 1)) if tag == "replace" else j1
                warnings.append(f"{path}: {prefix}: the line after the comment {comment[0].strip()!r} changed "
                                f"({old_payloads[i]!r}); it now precedes "
                                f"{new_payloads[j] if j < len(new) else 'the end of the block'!r}")
            before[j] += comment
    lines = []
    for j, (_, line) in enumerate(new):
        lines += before[j]
        lines.append(line)
    return lines + before[len(new)]


def one_pass(text, path, nnc, warnings):
    lines = text.split("\n")
    wanted = []
    for line in lines:
        m = MARKER.match(line)
        if m:
            wanted += m.group(1).split() or ["CHECK"]
    if not wanted:
        return text
    prefixes = {p for run in filecheck_runs(lines, path) for p in run[3]} | set(wanted)
    for prefix in dict.fromkeys(wanted):
        args, env, strict = golden_run(lines, prefix, path)
        block = old_block(lines, prefix, prefixes, path)
        output = run_nnc(nnc, args, env, "\n".join(lines), path)
        new = new_directives(prefix, output, strict)
        if block is None:
            if lines and lines[-1] == "":
                lines.pop()
            lines += [line for _, line in new] + [""]
            continue
        start, end, items = block
        lines[start:end] = place_comments(items, new, path, prefix, warnings)
    return "\n".join(lines)


def update(path, nnc):
    """(old text, new text, warnings) for one file."""
    with open(path) as f:
        old = f.read()
    text, warnings = old, []
    for _ in range(MAX_PASSES):
        pass_warnings = []
        new = one_pass(text, path, nnc, pass_warnings)
        warnings = warnings or pass_warnings
        if new == text:
            return old, new, warnings
        text = new
    raise GoldenError(f"{path}: still changing after {MAX_PASSES} rewrites (does the output depend on itself?)")


def default_files():
    found = []
    for base, dirs, files in os.walk(os.path.join(ROOT, "tests", "lit")):
        dirs[:] = sorted(d for d in dirs if d != "Inputs")
        for name in sorted(files):
            path = os.path.join(base, name)
            if name.endswith((".nn", ".test")):
                with open(path, errors="replace") as f:
                    if any(MARKER.match(line) for line in f):
                        found.append(path)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="the nnc to run (build/nnc)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a golden would change")
    ap.add_argument("files", nargs="*", help="test files (default: every file under tests/lit with the marker)")
    opts = ap.parse_args()
    nnc = shutil.which(opts.nnc) or opts.nnc
    if not os.access(nnc, os.X_OK):
        sys.exit(f"update-goldens: no nnc at {opts.nnc} (build first, or give --nnc)")
    files = opts.files or default_files()
    if not files:
        sys.exit("update-goldens: no file has a '# UPDATE: golden' line")
    stale = 0
    for path in files:
        try:
            old, new, warnings = update(path, os.path.abspath(nnc))
        except GoldenError as e:
            print(f"update-goldens: {e}", file=sys.stderr)
            sys.exit(2)
        for w in warnings:
            print(f"update-goldens: warning: {w}", file=sys.stderr)
        if old == new:
            continue
        stale += 1
        if opts.check:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), path, path))
        else:
            tmp = f"{path}.tmp.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(new)
            shutil.copymode(path, tmp)
            os.replace(tmp, path)
            print(f"updated {os.path.relpath(path)}")
    if opts.check and stale:
        print(f"update-goldens: {stale} of {len(files)} goldens are stale: run tests/update-goldens.py",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
