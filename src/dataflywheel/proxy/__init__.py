"""The logging proxy: an OpenAI-compatible ``/v1/chat/completions`` in front of the big model.

* :mod:`.attribution`: which workload and client a call belongs to (headers, else the request's metadata);
* :mod:`.stream`: a streamed answer (server-sent events) re-assembled into one ChatCompletion;
* :mod:`.calls`: what one proxied call was (who answered, how) and the log record made of it;
* :mod:`.logwriter`: the bounded queue and the background thread that writes calls into the log store;
* :mod:`.routing`: the workload's route (from the job store, cached) and which model answers a request;
* :mod:`.forwarder`: the HTTP clients of the upstream and of candidates (pooled connections);
* :mod:`.app`: the FastAPI app (``flywheel proxy``).
"""
