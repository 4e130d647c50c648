"""Network code: layers, both YOLOR branches, and the variant registry."""
