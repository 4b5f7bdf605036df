"""Cryptography: the EMS1 segment format, key derivation and wrapping, the epoch keyring."""
