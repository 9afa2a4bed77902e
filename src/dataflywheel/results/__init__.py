"""What a job left behind, typed, for the people who read it: its stored result (:mod:`.model`), its
evaluated samples (:mod:`.samples`) and the curation funnel of its dataset build (:mod:`.funnel`). Read by the
API's samples endpoint, the web page and ``flywheel report``."""
