"""Discovery: find agents from a sentence (semantic + lexical search) and the marketplace
catalogue built on it."""
