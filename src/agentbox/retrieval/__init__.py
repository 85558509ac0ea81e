"""Vector stores' machinery below the engine: extract text, chunk it, index it, search it."""
