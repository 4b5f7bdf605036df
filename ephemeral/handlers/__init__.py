"""HTTP handlers, split by resource."""
