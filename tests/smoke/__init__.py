"""The deployment smoke: ``make smoke`` runs ``python -m tests.smoke`` (see run.py for what it does).

It is not part of the pytest run: it starts nginx, gunicorn, Celery workers and beat from deploy/, and owns
a database of its own while it runs. The structural checks of deploy/ are pytest tests in tests/deploy/.
"""
