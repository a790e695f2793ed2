"""Builds the optional C extensions; everything else is in pyproject.toml.

Without a C compiler the build goes on and semhash uses its numba popcount kernel and
Python word counting instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "semhash._popcount",
            ["semhash/_popcount.c"],
            extra_compile_args=["-O3", "-std=c11"],
            optional=True,
        ),
        Extension(
            "semhash._softmax",
            ["semhash/_softmax.c"],
            extra_compile_args=["-O3", "-std=c11"],
            optional=True,
        ),
        Extension(
            "semhash._tokens",
            ["semhash/_tokens.c"],
            extra_compile_args=["-O3", "-std=c11"],
            optional=True,
        ),
    ]
)
