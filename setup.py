"""Build the Cython kernels. Everything else about the package is in pyproject.toml.

Flags (DESIGN.md section 3): -O3 and OpenMP; -fno-math-errno so libm calls can be inlined;
-fno-trapping-math so the branch-free selects in our activations (cells.h) can be vectorized
(it only lets the compiler ignore floating-point exception traps, which nothing here enables;
every result stays IEEE-exact as written); no -ffast-math (it would change denormal handling for the whole process);
-march=native only when SEQCORE_NATIVE=1, since wheels must run on other x86-64 CPUs.
"""
import glob
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["blas", "cpu", "lstm", "gru", "rnn", "step", "checks", "pool", "layout"]

compile_args = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
link_args = ["-fopenmp"]
if os.environ.get("SEQCORE_NATIVE") == "1":
    compile_args.append("-march=native")
if sys.platform == "darwin":  # Apple clang needs libomp and a different spelling
    compile_args = ["-O3", "-Xpreprocessor", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    link_args = ["-lomp"]

extensions = [
    Extension(
        f"seqcore._kernels.{name}",
        [f"seqcore/_kernels/{name}.pyx"],
        include_dirs=["seqcore/_kernels"],
        depends=sorted(glob.glob("seqcore/_kernels/*.h")),  # a header edit rebuilds the kernels
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
