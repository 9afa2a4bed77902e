"""The decision a flywheel job ends with: what each candidate costs and how fast it answers
(:mod:`.cost`), and which one can replace the logged model (:mod:`.recommend`). The shapes they produce, stored
in a job's result and served by the API, page and report, are in :mod:`.schema`."""
