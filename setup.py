"""Build hook for the one compiled part: the statistics' C kernels (everything else is in setup.cfg).

The extension is optional: where no C compiler is found the build goes on without it, and the statistics
run their NumPy path (``kfpc.components.statistics.kernels``), which computes the same results more slowly.
Floating-point contraction is off (``-ffp-contract=off``): no fused multiply-add in the vector loops, so the
baseline build and its AVX2 clone round alike on every machine.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("kfpc.components.statistics._ckernels", ["components/statistics/_ckernels.c"],
                             extra_compile_args=["-O3", "-ffp-contract=off"], optional=True)])
