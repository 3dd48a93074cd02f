# lit configuration for nnc's golden tests: a .nn file (or .test script)
# holds its RUN: and CHECK: lines.
import os
import lit.formats

config.name = "nnc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".nn", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.nnc_obj_root, "tests", "lit")

config.substitutions.append(("%nnc", os.path.join(config.nnc_obj_root, "nnc")))
config.substitutions.append(("%mkidx", os.path.join(config.nnc_obj_root, "tests", "mkidx")))
config.environment["PATH"] = os.pathsep.join(
    [config.llvm_tools_dir, config.environment.get("PATH", "")])
config.environment["NO_COLOR"] = "1"
# Tests that train on the real data need the Debian package.
if os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    config.available_features.add("fashion-mnist")
