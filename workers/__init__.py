"""Background work: normalising media, purging, the deadline sweeper."""
