"""Promotion of a job's winner into the logging proxy's route, behind the recommendation's gate, and its
rollback; the candidate's live agreement with the big model from the proxy's logs.

* :mod:`.errors`: what refuses a promotion or a rollback (mapped to 404/409/422 at the API);
* :mod:`.gate`: whether a job's recommendation lets a candidate through (pure);
* :mod:`.promote`: promote and roll back (stored route events);
* :mod:`.agreement`: function-name agreement per day from the logged calls (pure, plus the log-store read).
"""
