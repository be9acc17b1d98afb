"""Worker sandboxes: what keeps one tenant's job away from the server and from other jobs.

A worker gets a clean environment (:mod:`.environment`), runs as its own Unix account
(:mod:`.identity`), in its own cgroup with its requests as limits (:mod:`.cgroups`), sees only its
own GPU device nodes (:mod:`.devices`), its own job directory (:mod:`.jobfiles`) and, with
bubblewrap, its own PID and mount namespaces, or runs in an OCI image through podman
(:mod:`.commands` builds both command lines). :mod:`.policy` detects what the machine allows,
reports it as an isolation level, and prepares each worker.

Everything here imports only the standard library: the Ray executor ships these modules to its
nodes by value, so nodes need Ray and Python but not fairpool.
"""
