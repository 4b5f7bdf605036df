"""Redis state: key names, Lua scripts and the repositories built on them."""
