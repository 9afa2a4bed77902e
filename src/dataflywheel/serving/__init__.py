"""The OpenAI-compatible model server (``flywheel serve-model``).

Layout after vLLM's ``entrypoints/openai``: :mod:`.protocol` (the request and response models),
:mod:`.service` (behaviour: validation into :class:`~dataflywheel.models.types.ChatRequest`, the batching
queue in front of the engine, streaming) and :mod:`.app` (the FastAPI routes and OpenAI-shaped errors,
``create_app``). FastAPI and uvicorn come with the ``serve`` extra, so this package imports nothing.
"""
