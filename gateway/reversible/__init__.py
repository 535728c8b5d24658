"""Reversible protection: token formats, the vault that maps surrogates back,
storing what a request issues, and restoring tokens in vendor responses."""
