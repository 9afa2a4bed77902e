"""The decision a flywheel job ends with: what each candidate costs and how fast it answers
(:mod:`.cost`), and which one can replace the logged model (:mod:`.recommend`). The shapes they produce, stored
in a job's result and served by the API, page and report, are in :mod:`.schema`; :mod:`.decide` reads what a
finished job left on disk and hands it to them, and :mod:`.tokens` counts the logged model's tokens when its
records do not say."""
