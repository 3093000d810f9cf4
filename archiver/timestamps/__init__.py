"""Trusted timestamps (RFC 3161) on the manifests: a third party's signed statement that a
manifest's exact bytes existed at a time.

Modules: ``tokens`` (pure: :func:`~archiver.timestamps.tokens.verify_token` checks a token
against a SHA-256 and trusted TSA roots; :func:`~archiver.timestamps.tokens.read_token` reads
what one says), ``client`` (asking the configured TSAs over HTTP). Storing a token beside its
manifest is the archive's work (:mod:`archiver.archive.stamping`), checking the stored ones is
``verify``'s (:mod:`archiver.audit.timestamps`).
"""
