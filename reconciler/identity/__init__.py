"""Identity: normalise records and resolve them into persons."""
