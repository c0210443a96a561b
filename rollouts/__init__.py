"""Ray workers that run episodes, the episode storage format, and streaming datasets over it."""
