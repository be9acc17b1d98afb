"""What a job may name as its image: a plain reference to a registry or podman's storage.

podman also takes *transports* (``oci-archive:/path``, ``dir:/path``, ``docker-archive:``, ...)
that read an image from a host path; run by root, that would let a job read any file of the
host as an image. Only ``[registry[:port]/]name[:tag][@sha256:digest]`` is accepted.
"""

from __future__ import annotations

import re

#: podman's own ways of naming images elsewhere than a registry or its storage: a job's image
#: must not make root's podman read a host path
TRANSPORTS = re.compile(r"^(containers-storage|dir|docker|docker-archive|docker-daemon|oci|"
                        r"oci-archive|ostree|sif|tarball)?:|://")
IMAGE_REF = re.compile(r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                       r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
                       r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")


def image_problem(image: str) -> str | None:
    """Why ``image`` is not a plain image reference (``[registry[:port]/]name[:tag][@digest]``),
    or None."""
    if TRANSPORTS.search(image) or not IMAGE_REF.fullmatch(image):
        return (f"image {image!r} is not an image reference: use [registry[:port]/]name[:tag]"
                f"[@sha256:digest], e.g. ghcr.io/org/train:1.2 (no transports such as "
                f"oci-archive:)")
    return None
