"""The database-outage tests' PostgreSQL server of their own: it lives in ``devtools.pgcluster``
(the chaos run restarts one too); this name stays for the tests that import it from here."""

from devtools.pgcluster import PrivatePostgres, available, bin_dir, using_database

__all__ = ["PrivatePostgres", "available", "bin_dir", "using_database"]
