"""A local stand-in for the UmamiAI Luma API (or, with ``--dialect luma``, Luma's own Dream
Machine API), for demo mode and tests.

Pure Python (no Django imports, nothing from lumaweb's apps), so it runs as `python -m simulator`
or through `manage.py runsimulator`; `devtools.simulator_process.SimulatorProcess` starts one as
a subprocess for tests.
"""
