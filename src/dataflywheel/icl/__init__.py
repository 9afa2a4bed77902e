"""In-context learning datasets: example selection, token budgets (tokens), embeddings (embedders)."""
