"""Media checks: magic-byte sniffing, the parser sandbox and photo/video normalisation."""
