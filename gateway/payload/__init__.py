"""Request payloads: Content-Encoding, formats (JSON, JSON Lines, CSV, form,
multipart, text) read as lazy units of fields, and written back."""
