"""The baseline scripts, installed as ``harness.baselines_scripts`` (see README.md here).

The timing suite loads them from the installed package only (:mod:`harness.baselines`), never
from the current folder. Each script also runs on its own: ``python baselines/torch_expert.py``.
"""
