"""The entity types a policy may name. A typo in a policy is an error, not a
silent gap, so every detector's types are listed here (a policy's own
`recognizers` add theirs)."""

# spaCy NER (gateway/detection/ner.py).
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION", "TITLE"})  # TITLE: names.py
# Also found by NER (dates), so a policy with only these still runs it.
NER_ALSO = frozenset({"DATE_TIME"})

# The pattern layer (gateway/detection/patterns/).
PATTERN_ENTITIES = frozenset({
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "US_ITIN", "IBAN_CODE", "IP_ADDRESS",
    "MAC_ADDRESS", "URL", "US_BANK_ROUTING", "US_BANK_NUMBER", "STREET_ADDRESS", "ZIP_CODE", "DATE_OF_BIRTH",
    "DATE_TIME", "AGE", "US_PASSPORT", "PASSPORT", "US_DRIVER_LICENSE", "MEDICAL_RECORD_NUMBER", "CRYPTO",
    "MEDICAL_LICENSE",
})

SECRET_ENTITIES = frozenset({"SECRET"})

# Company IP (gateway/detection/company.py); a policy's `terms:` add its own types.
COMPANY_ENTITIES = frozenset({"PROTECTED_DOCUMENT", "CLASSIFICATION_MARKING", "SOURCE_CODE"})

KNOWN_ENTITIES = NER_ENTITIES | PATTERN_ENTITIES | SECRET_ENTITIES | COMPANY_ENTITIES

# Known, but detected only when a policy names them. Empty since issue 11: the
# small NER model labels many personal names ORG, so leaving ORGANIZATION out
# leaked them; public and the company's own names are allowed instead
# (gateway/detection/data/public_orgs.txt and a policy's `allow:`).
OPT_IN_ENTITIES: frozenset[str] = frozenset()

DEFAULT_ENTITIES = KNOWN_ENTITIES - OPT_IN_ENTITIES
