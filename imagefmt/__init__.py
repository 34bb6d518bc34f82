"""Image formats and the local content store: digests, references, manifests,
configs, layer tars with whiteouts, the store, and save/load tarballs."""
