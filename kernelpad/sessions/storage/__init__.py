"""Where sessions, their participants, runs and every change of their notebook are kept.

``database`` (the interface) with ``sqlite`` and ``postgresql`` behind it, ``factory`` (the one a
DATABASE_URL names), ``migrations`` (the schema, written once for both), ``rows`` (how rows
become models) and ``store`` (async access, on one database thread).
"""
