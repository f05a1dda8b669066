"""A local stand-in for the UmamiAI Luma API, for demo mode and tests.

Pure Python (no Django imports), so it runs as `python -m generations.simulator` or through
`manage.py runsimulator`; `testing.SimulatorProcess` starts one as a subprocess for tests.
"""
