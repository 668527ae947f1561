"""Without HTTP: decoding large JPEGs, decode + model in one process."""
