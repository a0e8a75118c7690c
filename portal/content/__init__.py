"""The information services' content: the import format and its validation (format.py,
records.py, svg.py), the generated "sample" set (sample.py), the current content in the database
(store.py), full-text search on SQLite and PostgreSQL (search.py), who may read it (access.py)
and the labour-value job sheet (jobsheet.py)."""
