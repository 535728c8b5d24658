"""The entity types a policy may name. A typo in a policy is an error, not a
silent gap, so every detector's types are listed here."""

NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP"})

PATTERN_ENTITIES = frozenset({
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS",
    "URL", "DATE_TIME", "US_BANK_NUMBER", "US_DRIVER_LICENSE", "US_PASSPORT", "US_ITIN",
    "CRYPTO", "MEDICAL_LICENSE",
})

SECRET_ENTITIES = frozenset({"SECRET"})

# Company IP (gateway/detection/company.py); a policy's `terms:` add its own types.
COMPANY_ENTITIES = frozenset({"PROTECTED_DOCUMENT", "CLASSIFICATION_MARKING", "SOURCE_CODE"})

KNOWN_ENTITIES = NER_ENTITIES | PATTERN_ENTITIES | SECRET_ENTITIES | COMPANY_ENTITIES
