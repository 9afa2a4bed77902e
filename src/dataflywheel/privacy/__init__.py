"""PII redaction before storage (``privacy.redact``): find personal data in log records and mask or
pseudonymize it before any log store sees the record.

``kinds`` (what is found), ``checksums``, ``patterns`` (emails, phones, cards, IBANs, IPs), ``names``,
``addresses``, ``detect`` (all of them, overlaps resolved, values found once found everywhere in a record),
``surrogates`` (pseudonyms), ``redact`` (walking a record), ``config`` (the redactor the settings ask for).
"""
