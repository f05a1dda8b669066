"""Test and operations machinery, kept out of the product: the Docker image does not copy it.

* ``simulator_process``: the simulator (``python -m simulator``) as a real subprocess;
* ``processes``: Celery worker and beat subprocesses on the database in use;
* ``chaos``: the chaos run (``manage.py chaos``, ``tests/test_chaos.py``).

A Django app only so that ``manage.py chaos`` is found; settings add it to INSTALLED_APPS when it
is importable. No module of ``lumaweb``, ``generations`` or ``simulator`` imports it.
"""
