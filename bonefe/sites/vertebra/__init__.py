"""The vertebra site: frame, endplate loading, spinal activities, SINS and a procedural phantom."""
