"""Gatehouse's programmatic surface: the REST API under /api/v1/ (django-ninja) and the
subset of the Hugging Face Hub protocol that huggingface_hub clients speak (api.hub).

Both are thin: they authenticate (api.auth), parse input, ask access.policy and call the
same services as the pages. Errors are JSON ``{"error": code, "message": ..., ...}`` with
stable codes (api.errors).
"""
