"""The part of the Hugging Face Hub protocol that huggingface_hub clients speak, so that
``HF_ENDPOINT=<portal> hf download org/model`` works with a Gatehouse token.

repos.py: whoami, model info, file trees, resolve (download URLs). access_requests.py: the
gated-repository access-request calls, mapped onto Gatehouse's review services.
"""
