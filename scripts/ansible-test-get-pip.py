"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap its venvs.

ansible-test fetches that script from a host outside PyPI, which this project's machines
cannot reach. ./scripts/test copies this file into ansible-test's cache instead: it
bootstraps pip from the interpreter's own ensurepip wheel, then runs `pip install` with
the arguments ansible-test passes (minus get-pip's own --no-setuptools/--no-wheel flags),
so packages still come from PyPI at the versions ansible-test pins.
"""

import ensurepip
import os
import runpy
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip hides pip's configuration for its own run; give the real install it back.
os.environ.pop("PIP_CONFIG_FILE", None)
os.environ.pop("ENSUREPIP_OPTIONS", None)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install"] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
