# lit configuration for nnc's golden tests: a .nn file (or .test script)
# holds its RUN: and CHECK: lines.
import os
import lit.formats

config.name = "nnc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".nn", ".test"]
config.excludes = ["Inputs", "expect_status.py", "expect_error.py"]
config.test_source_root = os.path.dirname(__file__)
# ctest runs one lit process per test, in parallel, and each rewrites
# .lit_test_times.txt in its exec root when it ends: sharing one root, two of
# them once interleaved their writes and every later run failed to parse the
# file. So ctest gives each test a root of its own (--param exec_root).
config.test_exec_root = lit_config.params.get("exec_root", os.path.join(config.nnc_obj_root, "tests", "lit"))

config.substitutions.append(("%nnc", os.path.join(config.nnc_obj_root, "nnc")))
config.substitutions.append(("%mkidx", os.path.join(config.nnc_obj_root, "tests", "mkidx")))
# The runtime library and its header, for programs linking objects of nnc -c.
config.substitutions.append(("%libnnrt", os.path.join(config.nnc_obj_root, "libnnrt.a")))
# The C compiler for programs linking them: in the sanitizer build with its
# sanitizers (%sanitize, "" otherwise), which the instrumented libnnrt.a needs.
sanitize = "-fsanitize=" + config.nnc_sanitize if config.nnc_sanitize else ""
config.substitutions.append(("%cc", "cc " + sanitize))
config.substitutions.append(("%sanitize", sanitize))
config.substitutions.append(("%nnrt_include", os.path.join(os.path.dirname(__file__), "..", "..", "runtime")))
config.environment["PATH"] = os.pathsep.join(
    [config.llvm_tools_dir, config.environment.get("PATH", "")])
config.environment["NO_COLOR"] = "1"
# The LLVM nnc is built with (for `FileCheck -DLLVM=%llvm_version`).
config.substitutions.append(("%llvm_version", config.llvm_version))
# The sanitizer build: ASan reserves terabytes of address space for its
# shadow memory, so tests that limit address space (ulimit -v) cannot run.
if config.nnc_sanitize:
    config.available_features.add("sanitizer")
# In the sanitizer build, a report exits with 66, a status nnc never uses,
# so `%status 1` or `%status 2` fails on it (lit's `not` would accept it).
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    config.environment[var] = ":".join(
        o for o in (config.environment.get(var, ""), "exitcode=66") if o)
# The REPL's terminal test types into tmux.
import shutil
if shutil.which("tmux"):
    config.available_features.add("tmux")
# Data-parallel training (mpi/): an nnc built with MPI (NNC_MPI) and Open
# MPI's launcher; without them the tests are reported unsupported. %mpirun
# runs more ranks than cores, as root too (containers), one thread each.
if config.nnc_mpi.upper() in ("ON", "1", "TRUE", "YES") and shutil.which("mpirun"):
    config.available_features.add("mpi")
config.substitutions.append(("%mpirun", "mpirun --oversubscribe --allow-run-as-root -x NNC_THREADS=1"))
# Tests that train on the real data need the Debian package.
if os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    config.available_features.add("fashion-mnist")
# scikit-learn's data files (Debian's python3-sklearn), for examples/tables.
if os.path.exists("/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv"):
    config.available_features.add("sklearn-data")
# A Python with NumPy (Debian's python3-numpy is /usr/bin/python3's), for the
# tests that read nnc's .npy outputs with it: %numpy_python.
import subprocess
for py in ("python3", "/usr/bin/python3"):
    if subprocess.run([py, "-c", "import numpy"], capture_output=True).returncode == 0:
        config.available_features.add("numpy")
        config.substitutions.append(("%numpy_python", py))
        break
# A Python with scikit-learn (Debian's python3-sklearn), for the scripts in
# examples/tables: %sklearn_python. Found, not imported (an import takes a
# second, and lit reads this file once a test).
for py in ("python3", "/usr/bin/python3"):
    if subprocess.run([py, "-c", "import importlib.util, sys; sys.exit(not importlib.util.find_spec('sklearn'))"],
                      capture_output=True).returncode == 0:
        config.available_features.add("sklearn")
        config.substitutions.append(("%sklearn_python", py))
        break
# The host's vector features, for tests of the code generated for them.
try:
    with open("/proc/cpuinfo") as f:
        flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    for feat in ("avx512f", "avx2", "fma"):
        if feat in flags:
            config.available_features.add(feat)
except OSError:
    pass
# %status N CMD: CMD must exit with status N (its output passes through).
config.substitutions.append(
    ("%status", "python3 " + os.path.join(os.path.dirname(__file__), "expect_status.py")))
# %error STATUS REGEX CMD: CMD must fail with STATUS and a message matching
# REGEX, without a signal or a sanitizer report (the malformed-input suite).
config.substitutions.append(
    ("%error", "python3 " + os.path.join(os.path.dirname(__file__), "expect_error.py")))
