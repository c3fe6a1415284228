"""gunicorn configuration for mock-kms: ``gunicorn -c deploy/gunicorn.conf.py``.

Serves ``kms_service.serving.wsgi:application`` with the settings of the ``MOCK_KMS_*``
environment (the same variables as ``mock-kms serve``; see the README), and takes every gunicorn
option from the function ``mock-kms serve`` uses too. Workers: ``MOCK_KMS_WORKERS``, else
(2 x CPUs) + 1 between 2 and 16. The master checks everything and reconciles the seed file
before forking; each worker builds the app after fork. A bad setting exits with status 2.
"""

from kms_service.serving.gunicorn_options import options_from_environment

globals().update(options_from_environment())
