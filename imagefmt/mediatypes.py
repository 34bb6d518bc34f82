"""Media types of OCI and Docker schema2 manifests, configs and layers."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
UNCOMPRESSED_LAYERS = (OCI_LAYER, OCI_LAYER_ND, DOCKER_LAYER)
GZIP_LAYERS = (OCI_LAYER_GZIP, OCI_LAYER_ND_GZIP, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN)
ZSTD_LAYERS = (OCI_LAYER_ZSTD, OCI_LAYER_ND_ZSTD)
LAYERS = UNCOMPRESSED_LAYERS + GZIP_LAYERS + ZSTD_LAYERS
FOREIGN_LAYERS = (DOCKER_LAYER_FOREIGN, OCI_LAYER_ND, OCI_LAYER_ND_GZIP, OCI_LAYER_ND_ZSTD)

# What a client sends in Accept to get any image manifest back.
ACCEPT_ALL = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


def is_manifest(mt: str) -> bool:
    return mt in MANIFESTS


def is_index(mt: str) -> bool:
    return mt in INDEXES


def is_layer(mt: str) -> bool:
    return mt in LAYERS


def is_distributable(mt: str) -> bool:
    return mt not in FOREIGN_LAYERS


def compression(mt: str) -> str:
    """'none', 'gzip' or 'zstd' for a layer media type; '' for anything else."""
    if mt in UNCOMPRESSED_LAYERS:
        return "none"
    if mt in GZIP_LAYERS:
        return "gzip"
    if mt in ZSTD_LAYERS:
        return "zstd"
    return ""


def layer_type(compression_name: str, docker: bool = False) -> str:
    """The layer media type for a compression, OCI by default."""
    if docker:
        return {"none": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP}[compression_name]
    return {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression_name]
