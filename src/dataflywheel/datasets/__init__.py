"""Dataset builds: read a source, curate, split, write a versioned dataset folder (build is the entry)."""
