"""The wire format: the request and response models of the REST API, shared by the server
(``fairpool.services``, ``fairpool.api``), the Python SDK (``fairpool.client``) and the CLI.

Each module imports only pydantic, the standard library and ``fairpool.domain``, so a training
script that imports the SDK loads no server code:

- :mod:`~fairpool.schemas.base`: the base of every input model and the rules for text;
- :mod:`~fairpool.schemas.queues`: departments, projects, quotas, limits and idle policies;
- :mod:`~fairpool.schemas.jobs`: submitting jobs (mounts included), jobs, events, explanations;
- :mod:`~fairpool.schemas.nodes`: nodes, their devices and their isolation;
- :mod:`~fairpool.schemas.access`: tokens, role bindings, the audit log, secrets, accounts;
- :mod:`~fairpool.schemas.usage`: usage reports.
"""
