"""``mock-kms migrate-store``: an existing SQLite data directory copied into PostgreSQL, so
that several hosts serve its keys, aliases, grants and S3 objects and every old ciphertext
still decrypts (docs/migrate-store.md).

:mod:`.plan` lists the tables and their order, :mod:`.snapshot` takes consistent copies of the
SQLite files and brings them to the current schema, :mod:`.rows` copies the rows in one
PostgreSQL transaction, :mod:`.s3_files` copies the S3 segment files and master key, and
:mod:`.command` is the command line.
"""
