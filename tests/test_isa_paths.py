"""The kernels are compiled for AVX-512, AVX2+FMA and a baseline, and the best one this CPU runs
is chosen at run time (_kernels/cells.h). A user's CPU may take a path this machine would not,
so the kernel tests and the ragged-batch tests (whose row-mapped products take each path's
register tiles) run again here with each lower path forced (SEQCORE_ISA lowers the choice,
never raises it)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqcore._kernels import cpu

HERE = Path(__file__).parent
LEVELS = {"avx2": "avx2+fma", "base": "baseline"}


@pytest.mark.parametrize("isa", sorted(LEVELS))
def test_kernel_suite_on_a_lower_instruction_set(isa):
    if isa == "avx2" and not cpu.simd_level().startswith("avx"):
        pytest.skip("this CPU has no AVX2")
    env = dict(os.environ, SEQCORE_ISA=isa)
    chosen = subprocess.run(
        [sys.executable, "-c", "from seqcore._kernels import cpu; print(cpu.simd_level())"],
        env=env, capture_output=True, text=True, check=True).stdout
    assert chosen.startswith(LEVELS[isa])
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          str(HERE / "test_kernels.py"), str(HERE / "test_ragged.py")],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
